"""The transformers engine: per-row stops, logprobs, and a looping model cut early."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from docvlm import Settings
from docvlm.engines import Request, repeats
from docvlm.engines.gemma2 import missing_final_cap, soft_cap
from docvlm.engines.hf import TransformersEngine, load_model

torch = pytest.importorskip("torch")


def _image(i: int) -> Image.Image:
    image = Image.new("RGB", (224, 224), (30 * i, 140, 200 - 20 * i))
    ImageDraw.Draw(image).text((12, 12 + 20 * i), f"row {i}", fill="black")
    return image


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path) -> TransformersEngine:
    model, processor, device = load_model(str(tiny_checkpoint), Settings(device="cpu"))
    return TransformersEngine("tiny", model, processor, device, repetition_span=None)


@pytest.fixture(scope="module")
def looping_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint with its final norm zeroed: every logit is equal, so greedy
    decoding writes token 0 forever (a runaway loop, whatever the tiny weights are)."""
    model, _, _ = load_model(str(tiny_checkpoint), Settings(device="cpu"))
    with torch.no_grad():
        model.model.language_model.norm.weight.fill_(-1.0)  # Gemma scales by (1 + w)
    out = tmp_path_factory.mktemp("looping") / "ckpt"
    model.save_pretrained(out, safe_serialization=True)
    for name in tiny_checkpoint.iterdir():
        if not (out / name.name).exists():
            shutil.copy(name, out / name.name)
    return out


def test_row_stops_flag_each_row_on_its_own() -> None:
    from docvlm.engines.stopping import RowStops, cycles

    prompt = [9, 9, 9]
    rows = [
        [*prompt, 4, 5, 4, 5, 4, 5],  # a cycle of period 2: repetition
        [*prompt, 4, 5, 6, 7, 8, 3],  # distinct tokens: runs on
        [*prompt, 4, 5, 6, 7, 8, 1],  # EOS (id 1) just written
        [*prompt, 6, 6, 6, 6, 6, 6],  # budget 6 reached, and looping: length wins
    ]
    stops = RowStops(len(prompt), [100, 100, 100, 6], eos=1, span=6)
    flags = stops(torch.tensor(rows), None)
    assert flags.tolist() == [True, False, True, True]
    assert stops.reasons[:1] + stops.reasons[2:] == ["repetition", "eos", "length"]
    assert stops.ends == [6, None, 5, 6]
    # the batched check agrees with repeats() on every row
    tails = torch.tensor([row[-6:] for row in rows])
    assert cycles(tails).tolist() == [repeats(row[-6:], 6) for row in rows]
    # a finished row stays finished and keeps its end
    rows[1][-1] = 1
    assert stops(torch.tensor(rows), None).tolist() == [True] * 4
    assert stops.ends == [6, 5, 5, 6]


def test_tokens_and_logprobs_equal_plain_generate(engine: TransformersEngine) -> None:
    """Per-row budgets in one batch; each row equals generate with scores kept."""
    model = engine.model
    requests = [Request(_image(i), p, b) for i, (p, b) in enumerate([("ocr", 12), ("table", 3)])]
    ours = engine.generate(requests)
    for request, generation in zip(requests, ours, strict=True):
        inputs = engine.processor(
            images=[request.image], text=["<image>" + request.prompt], return_tensors="pt"
        )
        with torch.inference_mode():
            out = engine.model.generate(
                **inputs,
                max_new_tokens=request.max_new_tokens,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
            )
        ids = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
        # Gemma 2's final soft-cap, which transformers 5.17's generate leaves out
        scores = soft_cap(torch.stack(out.scores, dim=1)[0].float(), missing_final_cap(model))
        steps = scores.log_softmax(-1)
        logprobs = [float(steps[i, token]) for i, token in enumerate(ids)]
        if 1 in ids:  # EOS ends the answer
            ids, logprobs = ids[: ids.index(1)], logprobs[: ids.index(1)]
        assert generation.token_ids == tuple(ids)
        assert generation.logprobs == pytest.approx(logprobs, abs=1e-5)
        assert generation.stop == ("eos" if len(ids) < request.max_new_tokens else "length")
    assert len(set(ours[0].token_ids)) > 1  # the tiny model is not looping here


def test_a_looping_row_stops_after_the_span(looping_checkpoint: Path) -> None:
    model, processor, device = load_model(str(looping_checkpoint), Settings(device="cpu"))
    engine = TransformersEngine("looping", model, processor, device, repetition_span=24)
    requests = [Request(_image(0), "ocr", 4096), Request(_image(1), "table html", 10)]
    looping, short = engine.generate(requests)
    assert looping.stop == "repetition" and looping.tokens == 24
    assert short.stop == "length" and short.tokens == 10
    assert set(looping.token_ids) == {0}


def test_read_table_on_a_looping_model_stops_at_the_repetition_span(
    looping_checkpoint: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI with the table task's 4,096-token budget ends the loop at the span (64
    here to keep the test short; 512 by default, under a minute on a 2-core CPU)."""
    from docvlm.cli import app

    monkeypatch.setenv("DOCVLM_REPETITION_SPAN", "64")
    image = corpus / "tables/pubtabnet/examples/PMC1626454_002_00.png"
    arguments = ["read-table", str(image), "-c", str(looping_checkpoint), "--device", "cpu"]
    result = CliRunner().invoke(app, [*arguments, "--json"])
    assert result.exit_code == 0, result.output
    (payload,) = json.loads(result.stdout)
    assert payload["task"] == "table" and payload["stop"] == "repetition"
