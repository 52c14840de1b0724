"""``docvlm info --check``: does docvlm's engine equal transformers here, and how fast is it?

docvlm's engine reimplements PaliGemma 2's forward pass (attention masks, soft-caps,
caches); transformers is the reference it must equal. A new GPU, torch or transformers
can break that without any test of ours running there, so users can check their own
machine: both engines read one synthetic page with the configured checkpoint, greedy
tokens and their log-probabilities are compared, and prefill and decode are timed.

``compare`` is also what engine selection ``auto`` runs (a short version) before it
trusts docvlm's engine on CUDA: on a mismatch it keeps transformers, with one warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field

from docvlm.reading.requests import Engine, Generation, Request

if TYPE_CHECKING:
    from docvlm.engines.fast import PaliGemmaEngine
    from docvlm.engines.hf import TransformersEngine
    from docvlm.settings import Settings

__all__ = ["Agreement", "EngineCheck", "check_engine", "compare", "pick_auto", "synthetic_page"]

_log = logging.getLogger(__name__)


class Agreement(BaseModel):
    """How far docvlm's engine is from transformers on the same requests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens_equal: bool = Field(description="every request's greedy tokens are the same")
    tokens_compared: int = Field(description="tokens compared, up to the first difference")
    max_logprob_gap: float = Field(description="largest log-probability gap (nats) there")
    tolerance: float = Field(description="the gap allowed for this dtype (nats)")
    passed: bool = Field(description="within tolerance; a difference only at a near-tie")


class EngineCheck(BaseModel):
    """What ``docvlm info --check`` found."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    checkpoint: str
    device: str
    dtype: str
    agreement: Agreement
    prefill_ms_per_image: float = Field(description="docvlm engine, prompt to first token")
    decode_tokens_per_s: float = Field(description="docvlm engine, after the first token")
    generate_prefill_ms_per_image: float = Field(description="transformers generate")
    generate_decode_tokens_per_s: float = Field(description="transformers generate")
    auto_engine: Literal["docvlm", "transformers"] = Field(
        description="what engine selection `auto` uses with this checkpoint here"
    )
    reason: str = Field(description="why `auto` uses that engine")


def synthetic_page(resolution: int) -> Image.Image:
    """A square scan-like page: a heading, lines of text and a ruled table."""
    image = Image.new("RGB", (850, 850), "white")
    draw = ImageDraw.Draw(image)
    draw.text((60, 40), "Table 2: results of the assay", fill="black")
    for row in range(10):
        draw.text(
            (60, 80 + row * 22), f"line {row}: sample {row * 7} measured at 37 C", fill="black"
        )
    for r in range(5):
        for c in range(4):
            box = (60 + c * 150, 330 + r * 36, 210 + c * 150, 366 + r * 36)
            draw.rectangle(box, outline="black")
            draw.text((box[0] + 8, box[1] + 10), f"{r}.{c}", fill="black")
    return image.resize((resolution, resolution))


def _tolerance(dtype: Any) -> float:
    import torch

    # float32 kernels agree to 1e-3 nats; bf16 logits near the cap are 1/8 apart
    return 2e-3 if dtype == torch.float32 else 0.15


def compare(
    ours: Sequence[Generation], theirs: Sequence[Generation], tolerance: float
) -> Agreement:
    """Compare two engines' answers to the same requests, token by token.

    A difference in tokens passes only where both engines gave the two candidates
    probabilities within ``tolerance`` (a near-tie, which reduced precision may break
    either way); the answers are not compared past it.
    """
    compared, gap, equal, passed = 0, 0.0, True, True
    for a, b in zip(ours, theirs, strict=True):
        for i, (token_a, token_b) in enumerate(zip(a.token_ids, b.token_ids, strict=False)):
            step = abs(a.logprobs[i] - b.logprobs[i]) if a.logprobs and b.logprobs else 0.0
            if token_a != token_b:
                equal, passed = False, passed and step <= tolerance
                break
            compared, gap = compared + 1, max(gap, step)
        else:
            if a.token_ids != b.token_ids or a.stop != b.stop:
                equal, passed = False, False  # one ended (EOS, budget) where the other went on
    passed = passed and gap <= tolerance
    return Agreement(
        tokens_equal=equal,
        tokens_compared=compared,
        max_logprob_gap=gap,
        tolerance=tolerance,
        passed=passed,
    )


def _agreement(fast: PaliGemmaEngine, plain: TransformersEngine, tokens: int) -> Agreement:
    requests = [
        Request(synthetic_page(fast.resolution), prompt, tokens) for prompt in ("ocr", "caption en")
    ]
    theirs = [plain.generate([request])[0] for request in requests]  # each alone, unpadded
    return compare(fast.generate(requests), theirs, _tolerance(fast.model.dtype))


def pick_auto(fast: PaliGemmaEngine, plain: TransformersEngine, tokens: int = 8) -> Engine:
    """docvlm's engine when it equals transformers on a synthetic page, else transformers
    (with one warning naming the gap): what ``auto`` runs on CUDA."""
    agreement = _agreement(fast, plain, tokens)
    if agreement.passed:
        return fast
    _log.warning(
        "docvlm's engine differs from transformers with %s here (tokens equal: %s, "
        "log-probability gap %.3g nats, allowed %.3g); using transformers' generate. "
        "`docvlm info --check` shows the details.",
        fast.checkpoint,
        agreement.tokens_equal,
        agreement.max_logprob_gap,
        agreement.tolerance,
    )
    return plain


def _timed(engine: Engine, requests: list[Request], cuda: bool) -> float:
    import torch

    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    engine.generate(requests)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _speed(engine: Engine, page: Image.Image, tokens: int, cuda: bool) -> tuple[float, float]:
    """(prefill ms per image, decode tokens/s) for one request: a one-token answer is
    the prefill; the rest of a ``tokens``-long one (the budget: EOS is not awaited)."""
    first = [Request(page, "ocr", 1)]
    _timed(engine, first, cuda)  # warm-up: kernels, graphs, allocator
    prefill = _timed(engine, first, cuda)
    generated = engine.generate([Request(page, "ocr", tokens)])[0].tokens
    total = _timed(engine, [Request(page, "ocr", tokens)], cuda)
    return prefill * 1e3, max(generated - 1, 1) / max(total - prefill, 1e-9)


def check_engine(checkpoint: str, settings: Settings, *, tokens: int = 64) -> EngineCheck:
    """Load ``checkpoint`` as configured, compare the engines and time them."""
    from docvlm.engines.fast import PaliGemmaEngine
    from docvlm.engines.hf import TransformersEngine, load_for_inference

    model, processor, device = load_for_inference(checkpoint, settings)
    plain = TransformersEngine(checkpoint, model, processor, device, repetition_span=None)
    fast = PaliGemmaEngine(model, processor, checkpoint, slots=2, repetition_span=None)
    agreement = _agreement(fast, plain, tokens)
    cuda = device == "cuda"
    page = synthetic_page(fast.resolution)
    prefill, decode = _speed(fast, page, tokens, cuda)
    generate_prefill, generate_decode = _speed(plain, page, tokens, cuda)
    auto: Literal["docvlm", "transformers"]
    if settings.engine != "auto":
        auto = "docvlm" if settings.engine == "docvlm" else "transformers"
        reason = f"the engine is set to {settings.engine}"
    elif not cuda:
        auto, reason = "transformers", "on the CPU, `auto` uses transformers' generate"
    elif agreement.passed:
        auto, reason = "docvlm", "on CUDA, docvlm's engine, as it equals transformers here"
    else:
        auto, reason = "transformers", "docvlm's engine differs from transformers here"
    return EngineCheck(
        checkpoint=checkpoint,
        device=device,
        dtype=str(model.dtype).removeprefix("torch."),
        agreement=agreement,
        prefill_ms_per_image=prefill,
        decode_tokens_per_s=decode,
        generate_prefill_ms_per_image=generate_prefill,
        generate_decode_tokens_per_s=generate_decode,
        auto_engine=auto,
        reason=reason,
    )
