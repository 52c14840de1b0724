"""What a fine-tuning run is asked for, and the plan it resolves to.

``FinetuneOptions`` holds what the caller set; a setting left ``None`` falls back, in
this order, to the base checkpoint's own ``docvlm_training.json`` (a checkpoint may ship
the settings it trains well with, as the tiny test checkpoint does) and then to the
task's recipe (``RECIPES``). ``Plan`` is the result, with the source of each value, and
is what the run prints at its start and records in ``training.json``. The checkpoint a
run writes ships a ``docvlm_training.json`` of its own (``carried_settings``), so that a
second round from it trains as the first did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from docvlm.errors import InputError, SettingsError
from docvlm.finetune.recipes import RECIPES, Recipe
from docvlm.tasks import TASKS, TaskName

__all__ = [
    "BASE_DEFAULTS_FILE",
    "FinetuneOptions",
    "FinetuneReport",
    "Plan",
    "SaveFormat",
    "carried_settings",
    "make_plan",
    "plan_for",
    "read_base_defaults",
]

#: A file in a base checkpoint with the training settings it works best with.
BASE_DEFAULTS_FILE = "docvlm_training.json"
SaveFormat = Literal["merged", "adapter"]
Precision = Literal["auto", "float32", "bfloat16"]
_TUNABLE = (
    "learning_rate",
    "label_smoothing",
    "lora_rank",
    "epochs",
    "batch_size",
    "grad_accum",
    "warmup_fraction",
)


class FinetuneOptions(BaseModel):
    """What to train, on what, and how. ``None`` means: the checkpoint's or recipe's value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: TaskName = Field(description="task whose prompt prefixes every example")
    data: Path = Field(description="JSON Lines of {image, target}")
    output: Path = Field(description="directory for the fine-tuned checkpoint")
    base: str | None = Field(
        default=None,
        description="checkpoint to start from (default google/paligemma2-3b-pt-<task res>)",
    )
    epochs: int | None = Field(default=None, ge=1, description="passes over the data")
    max_steps: int | None = Field(
        default=None, ge=1, description="optimizer steps, exactly; the data is cycled"
    )
    batch_size: int | None = Field(default=None, ge=1, description="examples per forward pass")
    grad_accum: int | None = Field(
        default=None, ge=1, description="forward passes per optimizer step"
    )
    learning_rate: float | None = Field(default=None, gt=0, description="peak AdamW rate")
    warmup_fraction: float | None = Field(
        default=None, ge=0, lt=1, description="share of steps with a linear warm-up"
    )
    label_smoothing: float | None = Field(default=None, ge=0, lt=1)
    lora_rank: int | None = Field(
        default=None, ge=0, description="LoRA rank (default 16); 0 trains all weights"
    )
    freeze_vision: bool = Field(
        default=False,
        description="keep the vision tower as it is (LoRA always does); with lora_rank 0 this "
        "is full fine-tuning of the projector and text weights",
    )
    quantization: Literal["none", "nf4"] = Field(
        default="none", description="nf4: QLoRA, the frozen base in 4-bit NF4 (CUDA)"
    )
    precision: Precision = Field(
        default="auto", description="auto: bfloat16 on CUDA, float32 on the CPU"
    )
    gradient_checkpointing: bool = Field(default=False, description="trade compute for memory")
    save: SaveFormat = Field(
        default="merged", description="merged checkpoint, or the LoRA adapter alone"
    )
    save_every: int | None = Field(
        default=None, ge=1, description="write a resumable checkpoint every N steps"
    )
    keep_checkpoints: int = Field(default=2, ge=1, description="resumable checkpoints kept")
    resume: bool = Field(default=False, description="continue from the latest checkpoint")
    eval_data: Path | None = Field(default=None, description="held-out JSON Lines")
    eval_fraction: float = Field(
        default=0.0, ge=0, lt=1, description="share of --data held out when no eval data"
    )
    eval_every: int | None = Field(
        default=None, ge=1, description="score the held-out set every N steps (and at the end)"
    )
    eval_max_new_tokens: int | None = Field(
        default=None, ge=1, description="longest held-out answer (default: the task's)"
    )
    seed: int = Field(default=0)

    def base_checkpoint(self) -> str:
        return self.base or f"google/paligemma2-3b-pt-{TASKS[self.task].resolution}"


class Plan(BaseModel):
    """The settings a run uses, each with where it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    recipe: Recipe
    epochs: int
    batch_size: int
    grad_accum: int
    learning_rate: float
    warmup_fraction: float
    label_smoothing: float
    lora_rank: int
    freeze_vision: bool = False
    sources: dict[str, str] = Field(description="setting -> option, checkpoint or recipe")

    def rows(self, resolution: int | None = None) -> list[tuple[str, str, str]]:
        """(setting, value, source) for printing; ``resolution``: the base checkpoint's."""
        values = {
            "learning_rate": f"{self.learning_rate:g}",
            "label_smoothing": f"{self.label_smoothing:g}",
            "lora_rank": f"{self.lora_rank}"
            + (f" ({self._trained()})" if not self.lora_rank else ""),
            "epochs": str(self.epochs),
            "batch_size": str(self.batch_size),
            "grad_accum": str(self.grad_accum),
            "warmup_fraction": f"{self.warmup_fraction:g}",
        }
        size = resolution or self.recipe.resolution
        paper = "paper" if size == self.recipe.resolution else f"paper: {self.recipe.resolution}"
        origin = f"base checkpoint ({paper})" if resolution else "recipe (paper)"
        rows = [
            ("resolution", f"{size} px, white square", origin),
            ("max target tokens", str(self.recipe.max_target_tokens), "recipe (paper)"),
        ]
        rows += [(name, values[name], _said(self.sources[name])) for name in _TUNABLE]
        return rows

    def _trained(self) -> str:
        return "projector and text weights" if self.freeze_vision else "all weights"


class FinetuneReport(BaseModel):
    """What a run did (also written to ``training.json`` in the output)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    options: FinetuneOptions
    plan: Plan
    steps: int = Field(description="optimizer steps taken in total")
    examples: int = Field(description="training examples used")
    skipped: list[str] = Field(default_factory=list, description="examples left out, and why")
    losses: list[float] = Field(description="training loss per step")
    evals: list[dict[str, float]] = Field(
        default_factory=list, description="held-out scores: {'step', metric: value}"
    )
    output: Path


def read_base_defaults(checkpoint: Path | None) -> dict[str, float | int]:
    """The training settings a local base checkpoint ships, if any."""
    if checkpoint is None or not (checkpoint / BASE_DEFAULTS_FILE).is_file():
        return {}
    path = checkpoint / BASE_DEFAULTS_FILE
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"not JSON ({error})", source=str(path)) from error
    if not isinstance(values, dict):
        raise InputError("expected a JSON object", source=str(path))
    unknown = sorted(set(values) - set(_TUNABLE))
    if unknown:
        raise InputError(f"unknown settings {unknown}", source=str(path))
    return {k: v for k, v in values.items() if isinstance(v, int | float)}


def make_plan(options: FinetuneOptions, base_defaults: dict[str, float | int]) -> Plan:
    """Resolve every setting: the option, else the checkpoint's default, else the recipe."""
    recipe = RECIPES[options.task]
    lora_rank = _pick(options, base_defaults, "lora_rank", 16)
    recipe_rate = recipe.lora_learning_rate if lora_rank[0] else recipe.learning_rate
    batch = _pick(options, base_defaults, "batch_size", min(recipe.batch_size, 4))
    accum = _pick(options, base_defaults, "grad_accum", max(1, recipe.batch_size // int(batch[0])))
    chosen = {
        "lora_rank": lora_rank,
        "learning_rate": _pick(options, base_defaults, "learning_rate", recipe_rate),
        "label_smoothing": _pick(options, base_defaults, "label_smoothing", recipe.label_smoothing),
        "epochs": _pick(options, base_defaults, "epochs", recipe.epochs),
        "batch_size": batch,
        "grad_accum": accum,
        "warmup_fraction": _pick(options, base_defaults, "warmup_fraction", 0.05),
    }
    try:
        return Plan(
            recipe=recipe,
            freeze_vision=options.freeze_vision,
            sources={name: source for name, (_, source) in chosen.items()},
            **{name: value for name, (value, _) in chosen.items()},
        )
    except ValidationError as error:
        raise SettingsError(f"bad training setting: {error.errors()[0]['msg']}") from error


def carried_settings(plan: Plan) -> dict[str, float | int]:
    """What a run's output ships as its ``docvlm_training.json``: the settings its base
    shipped and those set as options. The recipe's own values are left out, so that they
    stay derived in the next round (the recipe's rate follows the LoRA rank chosen then)."""
    return {name: getattr(plan, name) for name in _TUNABLE if plan.sources[name] != "recipe"}


def _said(source: str) -> str:
    # the paper gives resolution and output length; the rest of a recipe is docvlm's own
    return "recipe (docvlm's choice)" if source == "recipe" else source


def _pick(
    options: FinetuneOptions, base: dict[str, float | int], name: str, recipe: float | int
) -> tuple[float | int, str]:
    value = getattr(options, name)
    if value is not None:
        return value, "option"
    if name in base:
        return base[name], BASE_DEFAULTS_FILE
    return recipe, "recipe"


def plan_for(options: FinetuneOptions) -> Plan:
    """The plan of ``options``, with the defaults of a local base checkpoint."""
    from docvlm.engines.checkpoints import is_hub_id

    base = options.base_checkpoint()
    return make_plan(options, read_base_defaults(None if is_hub_id(base) else Path(base)))
