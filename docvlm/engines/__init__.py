"""Generation backends behind one small protocol.

``Engine.generate`` takes square crops with prompts and returns the model's text. The
transformers engine (``docvlm.engines.hf``) runs anywhere; ``docvlm.testing.ScriptedEngine``
is a fake for tests. Engines are built by a factory the ``DocVLM`` client is given, so
tests and other backends plug in without touching the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from docvlm.settings import Settings

__all__ = ["Engine", "EngineFactory", "Generation", "Request", "load_transformers_engine"]


@dataclass(frozen=True)
class Request:
    """One crop to read: a square RGB image, the prompt prefix, and the answer budget."""

    image: Image.Image
    prompt: str
    max_new_tokens: int


@dataclass(frozen=True)
class Generation:
    """What the model wrote for one request; ``finished`` is False when cut at the limit."""

    text: str
    tokens: int
    finished: bool


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


EngineFactory = Callable[[str, Settings], Engine]


def load_transformers_engine(checkpoint: str, settings: Settings) -> Engine:
    """The default factory: PaliGemma 2 through transformers (imports torch here)."""
    from docvlm.engines.hf import TransformersEngine

    return TransformersEngine.load(checkpoint, settings)
