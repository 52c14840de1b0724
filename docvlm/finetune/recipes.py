"""Per-task training defaults: the paper's transfer settings, printed at the start of a run.

PaliGemma 2 (arXiv 2412.03555, section 4 and appendix B) fine-tunes each task from the
``pt`` checkpoint at a fixed resolution, with the output length the task needs, and pads
crops to a white square (never stretched). Those three come from the paper. The paper
sweeps the learning rate per task and model size and trains all weights; docvlm's default
is LoRA, for which a higher rate is usual, so both rates are listed and the run picks by
mode. Label smoothing is 0 in docvlm's defaults except for molecules, where one SMILES
token wrong makes the whole answer wrong and smoothing is the usual OCSR regulariser.
Every value can be overridden on the command line; the table is printed so a run's
settings are never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from docvlm.tasks import TASKS, TaskName

__all__ = ["RECIPES", "TRAINABLE_TASKS", "Recipe"]

#: Tasks ``docvlm finetune`` trains (they have a parser and a metric in ``docvlm.eval``).
TRAINABLE_TASKS: tuple[TaskName, ...] = ("table", "molecule", "music", "text")


class Recipe(BaseModel):
    """Training defaults of one task."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: TaskName
    resolution: int = Field(description="input size in px (paper)")
    max_target_tokens: int = Field(description="longest target kept, in tokens (paper)")
    pad_square: bool = Field(default=True, description="pad crops to a white square (paper)")
    learning_rate: float = Field(description="AdamW rate for full fine-tuning (lora_rank 0)")
    lora_learning_rate: float = Field(description="AdamW rate with LoRA adapters")
    label_smoothing: float = Field(ge=0, lt=1, description="cross-entropy label smoothing")
    epochs: int = Field(ge=1, description="passes over the data when --max-steps is not given")
    batch_size: int = Field(ge=1, description="examples per optimizer step (after accumulation)")
    metric: str = Field(description="held-out metric (docvlm.eval) and its direction")
    data: str = Field(description="what the paper trains on")

    def rows(self) -> list[tuple[str, str]]:
        """(setting, value) pairs for printing."""
        return [
            ("resolution", f"{self.resolution} px, padded to a white square"),
            ("max target tokens", str(self.max_target_tokens)),
            ("learning rate", f"{self.learning_rate:g} full / {self.lora_learning_rate:g} LoRA"),
            ("label smoothing", f"{self.label_smoothing:g}"),
            ("epochs", str(self.epochs)),
            ("batch size", str(self.batch_size)),
            ("held-out metric", self.metric),
            ("paper data", self.data),
        ]


def _recipe(task: TaskName, **values: object) -> Recipe:
    spec = TASKS[task]
    return Recipe.model_validate(
        {
            "task": task,
            "resolution": spec.resolution,
            "max_target_tokens": spec.max_new_tokens,
            **values,
        }
    )


RECIPES: Mapping[TaskName, Recipe] = MappingProxyType(
    {
        "table": _recipe(
            "table",
            learning_rate=1e-5,
            lora_learning_rate=1e-4,
            label_smoothing=0.0,
            epochs=3,
            batch_size=32,
            metric="TEDS (higher is better)",
            data="PubTabNet 516k / FinTabNet 113k crops; HTML with cell text and coords",
        ),
        "molecule": _recipe(
            "molecule",
            learning_rate=3e-5,
            lora_learning_rate=2e-4,
            label_smoothing=0.1,
            epochs=5,
            batch_size=64,
            metric="exact SMILES match (higher is better)",
            data="1M PubChem molecules drawn with varied styles and augmentations",
        ),
        "music": _recipe(
            "music",
            learning_rate=1e-5,
            lora_learning_rate=1e-4,
            label_smoothing=0.0,
            epochs=5,
            batch_size=32,
            metric="SER, symbol error rate (lower is better)",
            data="GrandStaff 53.9k engraved piano systems, **kern",
        ),
        "text": _recipe(
            "text",
            learning_rate=1e-5,
            lora_learning_rate=1e-4,
            label_smoothing=0.0,
            epochs=3,
            batch_size=32,
            metric="CER (lower is better)",
            data="ICDAR'15, Total-Text, MLT17/19, HierText, TextOCR, IntelOCR",
        ),
    }
)
