"""Generation backends behind one small protocol.

``Engine.generate`` takes square crops with prompts and returns the model's text. The
transformers engine (``docvlm.engines.hf``) runs anywhere; ``docvlm.testing.ScriptedEngine``
is a fake for tests. Engines are built by a factory the model pool (``pool.ModelPool``)
is given; the ``DocVLM`` client and the archive runner both read through a pool, so tests
and other backends plug in without touching either.

Owns: the engines, the model pool, checkpoint resolution (``checkpoints``) and the CPU
plan (``cpu``). May import: the port types in ``docvlm.reading.requests``, settings,
errors, tasks, parsers. Never imports the rest of the reading path, the archive machinery,
the client, the server or the CLI.
"""

from __future__ import annotations

from collections.abc import Callable

from docvlm.reading.requests import Engine, Generation, Request, Stop, repeats
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


EngineFactory = Callable[[str, Settings], Engine]


def load_engine(checkpoint: str, settings: Settings) -> Engine:
    """The default factory: ``settings.engine`` picks; ``auto`` is docvlm's own engine
    on CUDA, once it equals transformers on a synthetic page (``docvlm.engines.check``;
    else transformers, with one warning), and transformers' ``generate`` on the CPU."""
    from docvlm.engines.hf import TransformersEngine, load_for_inference, pick_device

    choice = settings.engine
    if choice == "auto":
        choice = "docvlm" if pick_device(settings.device) == "cuda" else "transformers"
    model, processor, device = load_for_inference(checkpoint, settings)  # CPU: docvlm.engines.cpu
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
