"""Generation backends behind one small protocol.

``Engine.generate`` takes square crops with prompts and returns the model's text. The
transformers engine (``docvlm.engines.hf``) runs anywhere; docvlm's own
(``docvlm.engines.fast``) is the fast one on CUDA; ``docvlm.testing.ScriptedEngine`` is
a fake for tests. ``ENGINES`` is the table of engine name -> factory that
``Settings.engine`` picks from (the CLI's ``--engine`` choices come from it). Engines are
built by a factory the model pool (``pool.ModelPool``) is given; the ``DocVLM`` client and
the archive runner both read through a pool, so tests and other backends plug in without
touching either.

Owns: the engines, the model pool, checkpoint resolution (``checkpoints``) and the CPU
plan (``cpu``). May import: the port types in ``docvlm.reading.requests``, settings,
errors, tasks, parsers. Never imports the rest of the reading path, the archive machinery,
the client, the server or the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from docvlm.errors import SettingsError
from docvlm.reading.requests import Engine, Generation, Request, Stop, repeats
from docvlm.settings import Settings

if TYPE_CHECKING:
    from docvlm.engines.fast import PaliGemmaEngine
    from docvlm.engines.hf import TransformersEngine

__all__ = [
    "ENGINES",
    "Engine",
    "EngineFactory",
    "Generation",
    "Request",
    "Stop",
    "engine_factory",
    "load_engine",
    "repeats",
]


EngineFactory = Callable[[str, Settings], Engine]
Loaded = tuple[Any, Any, str]  # (model, processor, device)


def _load(checkpoint: str, settings: Settings) -> Loaded:
    from docvlm.engines.hf import load_for_inference

    return load_for_inference(checkpoint, settings)  # CPU: docvlm.engines.cpu


def _plain(checkpoint: str, settings: Settings, loaded: Loaded) -> TransformersEngine:
    from docvlm.engines.hf import TransformersEngine

    model, processor, device = loaded
    return TransformersEngine(
        checkpoint,
        model,
        processor,
        device,
        settings.repetition_span,
        batch_size=settings.batch_size,
    )


def _fast(checkpoint: str, settings: Settings, loaded: Loaded) -> PaliGemmaEngine:
    from docvlm.engines.fast import PaliGemmaEngine

    model, processor, _ = loaded
    return PaliGemmaEngine(
        model,
        processor,
        checkpoint,
        slots=settings.batch_size,
        repetition_span=settings.repetition_span,
    )


def transformers_engine(checkpoint: str, settings: Settings) -> Engine:
    """transformers' ``generate``, batched, each row stopping on its own; runs anywhere."""
    return _plain(checkpoint, settings, _load(checkpoint, settings))


def docvlm_engine(checkpoint: str, settings: Settings) -> Engine:
    """docvlm's own engine on the same weights (its layers are the model's modules)."""
    return _fast(checkpoint, settings, _load(checkpoint, settings))


def auto_engine(checkpoint: str, settings: Settings) -> Engine:
    """docvlm's engine on CUDA once it equals transformers on a synthetic page
    (``docvlm.engines.check``; else transformers, with one warning); transformers'
    ``generate`` on the CPU."""
    from docvlm.engines.hf import pick_device

    if pick_device(settings.device) != "cuda":
        return transformers_engine(checkpoint, settings)
    from docvlm.engines.check import pick_auto

    loaded = _load(checkpoint, settings)  # one copy of the weights for both engines
    return pick_auto(_fast(checkpoint, settings, loaded), _plain(checkpoint, settings, loaded))


#: Engine name -> factory: ``Settings.engine`` names a row, and each factory loads only
#: what its engine needs. The names are ``Settings.engine``'s (a test keeps them equal).
ENGINES: Mapping[str, EngineFactory] = MappingProxyType(
    {
        "auto": auto_engine,
        "docvlm": docvlm_engine,
        "transformers": transformers_engine,
    }
)


def engine_factory(name: str) -> EngineFactory:
    """The factory of engine ``name``; a ``SettingsError`` listing the names otherwise."""
    if name not in ENGINES:
        raise SettingsError(f"unknown engine {name!r}: use one of {', '.join(ENGINES)}")
    return ENGINES[name]


def load_engine(checkpoint: str, settings: Settings) -> Engine:
    """The default factory: the row of ``ENGINES`` that ``settings.engine`` names."""
    return engine_factory(settings.engine)(checkpoint, settings)
