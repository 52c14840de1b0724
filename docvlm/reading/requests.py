"""Requests and generations: the port between the reading path and a model.

The reading path plans ``Request``s (a square crop, a prompt, an answer budget) and turns
``Generation``s back into results; any ``Engine`` (docvlm's own, transformers' ``generate``,
``docvlm.testing.ScriptedEngine``, a caller's) answers them. Defined here, on the reading
side, so the reading path never imports an engine; engines import these types.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from PIL import Image

__all__ = ["MAX_PERIOD", "Engine", "Generation", "Request", "Stop", "repeats"]


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


#: The longest cycle the repetition guard looks for (both engines), in tokens.
MAX_PERIOD = 8


def repeats(tokens: Sequence[int], min_span: int, max_period: int = MAX_PERIOD) -> bool:
    """True when the last ``min_span`` tokens are one short cycle (period <= max_period),
    repeated at least twice."""
    if len(tokens) < min_span:
        return False
    tail = tokens[-min_span:]
    for period in range(1, min(max_period, min_span // 2) + 1):
        if all(tail[i] == tail[i - period] for i in range(period, min_span)):
            return True
    return False
