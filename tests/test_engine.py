"""docvlm's own engine against transformers' generate on the tiny checkpoint (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from docvlm import DocVLM, MissingDependencyError, Settings
from docvlm.engines import Generation, Request, load_engine, repeats
from docvlm.engines.fast import PaliGemmaEngine
from docvlm.engines.hf import TransformersEngine, load_model

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
    assert a.stop == b.stop
    assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


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
    # the prompt (256 image tokens + text) is longer than the tiny model's sliding window
    assert fast._window < 256


def test_tokens_equal_batched_generate_without_padding(
    engines: tuple[TransformersEngine, PaliGemmaEngine],
) -> None:
    plain, fast = engines
    requests = [Request(r.image, "ocr", 12) for r in _requests()[:3]]  # same prompt length
    for a, b in zip(plain.generate(requests), fast.generate(requests), strict=True):
        _same(a, b)


def test_repetition_guard_stops_a_runaway_loop(
    engines: tuple[TransformersEngine, PaliGemmaEngine],
) -> None:
    _, fast = engines
    guarded = PaliGemmaEngine(fast.model, fast.processor, "tiny", repetition_span=16)
    (generation,) = guarded.generate([Request(_requests()[0].image, "ocr", 200)])
    assert generation.stop == "repetition" and generation.tokens == 16  # random weights loop
    assert generation.confidence is not None and 0 < generation.confidence <= 1
    assert repeats([1, 2, 1, 2, 1, 2], 6) and not repeats([1, 2, 3, 4, 5, 6], 6)
    assert not repeats([7] * 5, 6)
    plain = TransformersEngine("tiny", fast.model, fast.processor, "cpu", repetition_span=16)
    (flagged,) = plain.generate([Request(_requests()[0].image, "ocr", 40)])
    assert flagged.stop == "repetition" and flagged.tokens == 40  # flagged, not cut


def test_engine_choice_and_results_carry_confidence(tiny_checkpoint: Path) -> None:
    auto = load_engine(str(tiny_checkpoint), Settings(device="cpu"))
    assert isinstance(auto, TransformersEngine)  # the CPU default
    settings = Settings(device="cpu", engine="docvlm", repetition_span=32)
    client = DocVLM(settings, checkpoint=str(tiny_checkpoint))
    assert isinstance(client.engine("text"), PaliGemmaEngine)
    (result,) = client.read_text(Image.new("RGB", (200, 200), "white"), max_new_tokens=64)
    assert result.stop == "repetition" and result.confidence is not None


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
def test_engine_equals_generate_on_cuda(tiny_checkpoint: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model, processor, device = load_model(
        str(tiny_checkpoint), Settings(device="cuda", dtype="float32")
    )
    plain = TransformersEngine("tiny", model, processor, device)
    fast = PaliGemmaEngine(model, processor, "tiny", slots=2, repetition_span=None)
    requests = _requests()
    for request, generation in zip(requests, fast.generate(requests), strict=True):
        assert plain.generate([request])[0].token_ids == generation.token_ids
