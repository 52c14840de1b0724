"""docvlm's own engine against transformers on the tiny checkpoint (CPU).

The tiny checkpoint has grouped queries, a sliding window shorter than the prompt,
scores at the soft-cap scale and a context-dependent greedy output, so a wrong engine
(positions off by one, a missing soft-cap, a wrong query->KV head mapping) changes logits
and tokens here. Logits are compared under teacher forcing, not only greedy tokens.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest
from conftest import scribbled
from PIL import Image, ImageDraw

from docvlm import DocVLM, MissingDependencyError, Settings, SettingsError
from docvlm.engines import ENGINES, Generation, Request, engine_factory, load_engine, repeats
from docvlm.engines.attention import Backend
from docvlm.engines.fast import PaliGemmaEngine
from docvlm.engines.hf import TransformersEngine, load_model
from docvlm.settings import EngineName
from docvlm.testing import teacher_forced_logits

torch = pytest.importorskip("torch")


def _requests() -> list[Request]:
    prompts = ["ocr", "table html", "smiles", "kern", "answer en what is the total?"]
    budgets = [40, 7, 25, 3, 60]
    requests = []
    for i, (prompt, budget) in enumerate(zip(prompts, budgets, strict=True)):
        image = Image.new("RGB", (224 + 40 * i, 224), (40 * i, 120, 220 - 30 * i))
        ImageDraw.Draw(image).text((10, 10 + 15 * i), f"cell {i}", fill="black")
        requests.append(Request(image, prompt, budget))
    return requests


@pytest.fixture(scope="module")
def engines(tiny_checkpoint: Path) -> tuple[TransformersEngine, PaliGemmaEngine]:
    model, processor, device = load_model(str(tiny_checkpoint), Settings(device="cpu"))
    plain = TransformersEngine(str(tiny_checkpoint), model, processor, device)
    fast = PaliGemmaEngine(model, processor, str(tiny_checkpoint), slots=2, repetition_span=None)
    return plain, fast


def _same(a: Generation, b: Generation) -> None:
    assert a.token_ids == b.token_ids
    assert a.text == b.text  # what a user reads: decoded from the same span
    assert a.stop == b.stop
    assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


@pytest.mark.parametrize(
    "attention", ["eager", pytest.param("flex", marks=pytest.mark.filterwarnings("ignore:flex"))]
)
def test_logits_equal_transformers_under_teacher_forcing(
    engines: tuple[TransformersEngine, PaliGemmaEngine], attention: Backend
) -> None:
    plain, _ = engines
    engine = PaliGemmaEngine(plain.model, plain.processor, "tiny", slots=2, attention=attention)
    generator = torch.Generator().manual_seed(0)
    text = plain.model.config.text_config
    # arbitrary answers (not the model's own choice); the unfused FlexAttention that runs
    # on the CPU is slow, so it gets shorter ones
    sizes = (70, 9, 30) if attention == "eager" else (12, 5)
    requests = _requests()[: len(sizes)]
    answers = [torch.randint(5, text.vocab_size, (n,), generator=generator).tolist() for n in sizes]
    ours = engine.score(requests, answers)
    for request, answer, logits in zip(requests, answers, ours, strict=True):
        expected = teacher_forced_logits(plain.model, plain.processor, request, answer)
        assert logits.shape == expected.shape == (len(answer) + 1, text.vocab_size)
        torch.testing.assert_close(logits, expected, atol=2e-4, rtol=1e-4)
    # the prompt (256 image tokens + text) is longer than the tiny model's sliding window,
    # and logits reach the final soft-cap's scale (where leaving it out would show)
    assert text.sliding_window < 256
    assert float(expected.abs().max()) > 0.5 * text.final_logit_softcapping


def test_tokens_equal_generate_for_each_request_alone(
    engines: tuple[TransformersEngine, PaliGemmaEngine],
) -> None:
    plain, fast = engines
    requests = _requests()
    # 5 requests through 2 slots: requests join as others finish (continuous batching)
    ours = fast.generate(requests)
    for request, generation in zip(requests, ours, strict=True):
        (alone,) = plain.generate([request])
        _same(alone, generation)
        assert generation.tokens <= request.max_new_tokens
    # the tiny model writes varied text, so equal tokens say something
    assert min(len(set(g.token_ids)) for g in ours if g.tokens >= 25) >= 8


def test_results_do_not_depend_on_slots_or_sync_interval(
    engines: tuple[TransformersEngine, PaliGemmaEngine],
) -> None:
    _, fast = engines
    requests = [Request(r.image, r.prompt, min(r.max_new_tokens, 20)) for r in _requests()]
    reference = fast.generate(requests)  # 2 slots, a sync every 8 steps
    for slots, sync in ((1, 1), (4, 3)):
        engine = PaliGemmaEngine(
            fast.model, fast.processor, "tiny", slots=slots, sync_every=sync, repetition_span=None
        )
        engine.fixed_shapes = slots > 1  # prefill padded to whole blocks and 4 rows, as on GPUs
        engine.prefill_batch = 3
        for a, b in zip(reference, engine.generate(requests), strict=True):
            _same(a, b)


def test_tokens_equal_batched_generate_without_padding(
    engines: tuple[TransformersEngine, PaliGemmaEngine],
) -> None:
    plain, fast = engines
    requests = [Request(r.image, "ocr", 12) for r in _requests()[:3]]  # same prompt length
    for a, b in zip(plain.generate(requests), fast.generate(requests), strict=True):
        _same(a, b)


def test_repetition_guard_stops_a_runaway_loop(
    engines: tuple[TransformersEngine, PaliGemmaEngine], tiny_checkpoint: Path
) -> None:
    _, fast = engines
    looping, _, _ = load_model(str(tiny_checkpoint), Settings(device="cpu"))
    with torch.no_grad():  # a zero output head: every logit equal, token 0 forever
        looping.lm_head.weight.zero_()
    request = Request(_requests()[0].image, "ocr", 200)
    for sync in (1, 8):  # the device runs ahead between syncs; the answer is cut back
        guarded = PaliGemmaEngine(
            looping, fast.processor, "tiny", slots=2, repetition_span=16, sync_every=sync
        )
        for generation in guarded.generate([request] * 3):  # the third joins a freed slot
            assert generation.stop == "repetition" and generation.token_ids == (0,) * 16
            assert generation.confidence == pytest.approx(1 / looping.lm_head.out_features)
    assert repeats([1, 2, 1, 2, 1, 2], 6) and not repeats([1, 2, 3, 4, 5, 6], 6)
    assert not repeats([7] * 5, 6)


def test_engine_choice_and_results_carry_confidence(tiny_checkpoint: Path) -> None:
    auto = load_engine(str(tiny_checkpoint), Settings(device="cpu"))
    assert isinstance(auto, TransformersEngine)  # the CPU default
    settings = Settings(device="cpu", engine="docvlm", repetition_span=32)
    client = DocVLM(settings, checkpoint=str(tiny_checkpoint))
    engine = client.engine("text")
    assert isinstance(engine, PaliGemmaEngine) and engine.repetition_span == 32
    (result,) = client.read_text(scribbled((200, 200)), max_new_tokens=16)
    assert result.stop in ("eos", "length") and result.confidence is not None
    assert 0 < result.confidence <= 1


def test_the_engine_table_names_every_engine_once() -> None:
    """``Settings.engine``, the CLI's ``--engine`` and docs/engine.md list the table's names;
    an unknown name is a ``SettingsError`` naming them, before anything loads."""
    from typer.testing import CliRunner

    from docvlm.cli import app

    assert sorted(ENGINES) == sorted(get_args(EngineName))
    with pytest.raises(TypeError):
        ENGINES["vllm"] = ENGINES["auto"]  # type: ignore[index]
    for name in ("vllm", "Auto"):
        with pytest.raises(SettingsError, match=f"unknown engine '{name}': use one of") as error:
            engine_factory(name)
        assert all(known in str(error.value) for known in ENGINES)
        with pytest.raises(SettingsError, match="unknown engine"):
            load_engine("no/such-checkpoint", Settings.model_construct(engine=name))
    runner = CliRunner()
    for command in (["read-text", "x.pdf"], ["convert", "x.pdf"], ["info"]):
        refused = runner.invoke(app, [*command, "--engine", "vllm"])
        assert refused.exit_code == 2
        assert "'vllm' is not an engine: use one of auto, docvlm" in refused.output
    assert "|".join(ENGINES) in runner.invoke(app, ["read-table", "--help"]).output
    shown = runner.invoke(app, ["info", "--device", "cpu", "--engine", "docvlm", "--json"])
    assert shown.exit_code == 0 and '"engine": "docvlm"' in shown.stdout
    docs = (Path(__file__).parents[2] / "docs" / "engine.md").read_text(encoding="utf-8")
    table = docs.split("| engine |", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE) == list(ENGINES)


def test_each_engine_factory_builds_only_its_engine(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[type] = []
    for kind in (TransformersEngine, PaliGemmaEngine):
        original = kind.__init__

        def record(self: Any, *args: Any, init: Any = original, **kwargs: Any) -> None:
            built.append(type(self))
            init(self, *args, **kwargs)

        monkeypatch.setattr(kind, "__init__", record)
    # auto on the CPU is transformers' generate
    expected = {
        "auto": TransformersEngine,
        "docvlm": PaliGemmaEngine,
        "transformers": TransformersEngine,
    }
    for name in ENGINES:
        built.clear()
        engine = load_engine(str(tiny_checkpoint), Settings(device="cpu", engine=name))
        kind = expected[name]
        assert type(engine) is kind and built == [kind], name
        assert engine.checkpoint == str(tiny_checkpoint)


def test_lora_adapter_is_applied(tiny_checkpoint: Path, tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    model, _, _ = load_model(str(tiny_checkpoint), Settings(device="cpu"))
    config = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft.get_peft_model(model, config).save_pretrained(tmp_path / "adapter")
    request = [Request(_requests()[0].image, "ocr", 5)]
    base = load_engine(str(tiny_checkpoint), Settings(device="cpu")).generate(request)[0]
    for merge in (True, False):
        settings = Settings(device="cpu", adapter=str(tmp_path / "adapter"), merge_adapter=merge)
        adapted = load_engine(str(tiny_checkpoint), settings).generate(request)[0]
        assert adapted.logprobs != pytest.approx(base.logprobs, abs=1e-6)


def test_quantization_needs_bitsandbytes(tiny_checkpoint: Path) -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="bitsandbytes"):
            load_model(str(tiny_checkpoint), Settings(device="cpu", quantization="nf4"))
    else:  # pragma: no cover - CUDA machines
        pytest.skip("bitsandbytes is installed")


@pytest.mark.gpu
@pytest.mark.parametrize("compile", [False, True])
def test_engine_equals_transformers_on_cuda(tiny_checkpoint: Path, compile: bool) -> None:
    """The CUDA path (FlexAttention kernels, CUDA graph, compiled step) in float32."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model, processor, device = load_model(
        str(tiny_checkpoint), Settings(device="cuda", dtype="float32")
    )
    plain = TransformersEngine("tiny", model, processor, device, repetition_span=None)
    fast = PaliGemmaEngine(model, processor, "tiny", slots=4, repetition_span=None, compile=compile)
    assert fast.attention == "flex" and fast.cuda_graphs
    requests = _requests()
    for request, generation in zip(requests, fast.generate(requests), strict=True):
        (alone,) = plain.generate([request])
        assert alone.token_ids == generation.token_ids and alone.stop == generation.stop
        assert alone.logprobs == pytest.approx(generation.logprobs, abs=1e-3)
    answers = [list(range(300, 300 + n)) for n in (40, 7)]
    scored = fast.score(requests[:2], answers)
    for request, answer, logits in zip(requests[:2], answers, scored, strict=True):
        expected = teacher_forced_logits(model, processor, request, answer).to(logits.device)
        torch.testing.assert_close(logits, expected, atol=1e-3, rtol=1e-3)
