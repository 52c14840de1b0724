"""Generation backends behind one small protocol.

``Engine.generate`` takes square crops with prompts and returns the model's text. The
transformers engine (``docvlm.engines.hf``) runs anywhere; ``docvlm.testing.ScriptedEngine``
is a fake for tests. Engines are built by a factory the ``DocVLM`` client is given, so
tests and other backends plug in without touching the pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from PIL import Image

from docvlm.settings import Settings

__all__ = [
    "Engine",
    "EngineFactory",
    "Generation",
    "Request",
    "Stop",
    "load_engine",
    "repeats",
]


@dataclass(frozen=True)
class Request:
    """One crop to read: a square RGB image, the prompt prefix, and the answer budget."""

    image: Image.Image
    prompt: str
    max_new_tokens: int


Stop = Literal["eos", "length", "repetition"]


@dataclass(frozen=True)
class Generation:
    """What the model wrote for one request.

    ``stop`` says why it ended: the end-of-sequence token, the token budget, or the
    repetition guard (a runaway loop). ``logprobs`` has one entry per token of
    ``token_ids`` when the engine reports them.
    """

    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] = ()
    stop: Stop = "eos"

    @property
    def tokens(self) -> int:
        return len(self.token_ids)

    @property
    def finished(self) -> bool:
        return self.stop == "eos"

    @property
    def confidence(self) -> float | None:
        """Geometric mean of the token probabilities (None without logprobs)."""
        if not self.logprobs:
            return None
        return math.exp(sum(self.logprobs) / len(self.logprobs))


class Engine(Protocol):
    """A loaded model that reads crops."""

    @property
    def checkpoint(self) -> str:
        """Hub id or directory the model came from."""
        ...

    @property
    def resolution(self) -> int:
        """Side of the square input in pixels."""
        ...

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """Greedy answers, one per request, in request order."""
        ...


def repeats(tokens: Sequence[int], min_span: int, max_period: int = 8) -> bool:
    """True when the last ``min_span`` tokens are one short cycle (period <= max_period),
    repeated at least twice."""
    if len(tokens) < min_span:
        return False
    tail = tokens[-min_span:]
    for period in range(1, min(max_period, min_span // 2) + 1):
        if all(tail[i] == tail[i - period] for i in range(period, min_span)):
            return True
    return False


EngineFactory = Callable[[str, Settings], Engine]


def load_engine(checkpoint: str, settings: Settings) -> Engine:
    """The default factory: ``settings.engine`` picks; ``auto`` is docvlm's own engine
    on CUDA, once it equals transformers on a synthetic page (``docvlm.engines.check``;
    else transformers, with one warning), and transformers' ``generate`` on the CPU."""
    from docvlm.engines.hf import TransformersEngine, load_for_inference, pick_device

    choice = settings.engine
    if choice == "auto":
        choice = "docvlm" if pick_device(settings.device) == "cuda" else "transformers"
    model, processor, device = load_for_inference(checkpoint, settings)  # CPU: docvlm.cpu
    plain = TransformersEngine(
        checkpoint,
        model,
        processor,
        device,
        settings.repetition_span,
        batch_size=settings.batch_size,
    )
    if choice == "transformers":
        return plain
    from docvlm.engines.fast import PaliGemmaEngine

    fast = PaliGemmaEngine(
        model,
        processor,
        checkpoint,
        slots=settings.batch_size,
        repetition_span=settings.repetition_span,
    )
    if settings.engine == "auto":
        from docvlm.engines.check import pick_auto

        return pick_auto(fast, plain)
    return fast
