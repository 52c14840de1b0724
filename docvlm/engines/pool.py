"""The model pool: one loaded engine per checkpoint, found by task.

Both the ``DocVLM`` facade and the archive runner are given a pool, so the runner never
reaches into the client: it asks the pool for a task's engine (and, through the engine,
its checkpoint and input resolution) and nothing else.
"""

from __future__ import annotations

from typing import Protocol

from docvlm.engines import EngineFactory, load_engine
from docvlm.errors import CheckpointNotConfiguredError
from docvlm.reading.requests import Engine
from docvlm.settings import Settings
from docvlm.tasks import TaskName

__all__ = ["HasModels", "ModelPool", "pool_of"]


class ModelPool:
    """Engines loaded on first use and kept, one per checkpoint.

    ``checkpoint`` overrides every task's checkpoint (one fine-tuned model for all);
    ``engine_factory`` builds an engine from a checkpoint and the settings.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        checkpoint: str | None = None,
        engine_factory: EngineFactory = load_engine,
    ) -> None:
        self.settings = settings
        self.override = checkpoint
        self._factory = engine_factory
        self._engines: dict[str, Engine] = {}

    def checkpoint_for(self, task: TaskName) -> str:
        """The checkpoint ``task`` runs on; raises when none is set and none is public."""
        checkpoint = self.override or self.settings.checkpoint_for(task)
        if checkpoint is None:
            raise CheckpointNotConfiguredError(
                f"no public checkpoint reads the {task!r} task: set "
                f"DOCVLM_{task.upper()}_CHECKPOINT or pass --checkpoint (a hub id or directory); "
                "`docvlm finetune` makes one from a google/paligemma2-*-pt checkpoint"
            )
        return checkpoint

    def engine(self, task: TaskName) -> Engine:
        """The loaded engine for ``task`` (loaded once per checkpoint)."""
        checkpoint = self.checkpoint_for(task)
        if checkpoint not in self._engines:
            self._engines[checkpoint] = self._factory(checkpoint, self.settings)
        return self._engines[checkpoint]

    @property
    def loaded(self) -> tuple[str, ...]:
        """Checkpoints loaded so far, in load order."""
        return tuple(self._engines)

    def close(self) -> None:
        """Drop the loaded models (their memory is freed when nothing else holds them)."""
        self._engines.clear()


class HasModels(Protocol):
    """Anything that owns a model pool (``DocVLM`` does: ``client.models``)."""

    @property
    def models(self) -> ModelPool: ...


def pool_of(models: ModelPool | HasModels) -> ModelPool:
    """The pool itself, or the pool of a client passed in its place."""
    return models if isinstance(models, ModelPool) else models.models
