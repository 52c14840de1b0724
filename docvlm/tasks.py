"""The task table: what each task asks the model, at what size, and how long it may answer.

Adding a task is adding a row here (and its result type in ``docvlm.results``), never an
if/elif branch elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_MIX_CHECKPOINT", "TASKS", "Region", "TaskName", "TaskSpec"]

TaskName = Literal["text", "table", "molecule", "music", "layout", "caption", "ask"]
Region = Literal["tiles", "page"]

#: The public checkpoint that reads text and finds regions out of the box (Gemma licence).
DEFAULT_MIX_CHECKPOINT = "google/paligemma2-3b-mix-448"


class TaskSpec(BaseModel):
    """One row of the task table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: TaskName = Field(description="task name used in the API and the CLI")
    prompt: str = Field(description="prefix given to the model; {question} is filled for `ask`")
    resolution: int = Field(description="input size the paper fine-tunes this task at (px)")
    max_new_tokens: int = Field(description="longest answer (paper transfer settings)")
    region: Region = Field(
        description="tiles: the page is cut into checkpoint-sized tiles; page: the page "
        "(or a region crop) is padded to a square and read whole"
    )
    default_checkpoint: str | None = Field(
        description="public checkpoint, or None where users fine-tune their own"
    )
    summary: str = Field(description="one line for help texts")

    def render_prompt(self, question: str | None = None) -> str:
        if "{question}" in self.prompt:
            if not question:
                raise ValueError(f"task {self.name!r} needs a question")
            return self.prompt.format(question=" ".join(question.split()))
        return self.prompt


def _spec(**values: object) -> TaskSpec:
    return TaskSpec.model_validate(values)


TASKS: Mapping[TaskName, TaskSpec] = MappingProxyType(
    {
        "text": _spec(
            name="text",
            prompt="ocr",
            resolution=896,
            max_new_tokens=2048,
            region="tiles",
            default_checkpoint=DEFAULT_MIX_CHECKPOINT,
            summary="read the text (OCR)",
        ),
        "table": _spec(
            name="table",
            prompt="table html",
            resolution=896,
            max_new_tokens=4096,
            region="page",
            default_checkpoint=None,
            summary="read a table as HTML",
        ),
        "molecule": _spec(
            name="molecule",
            prompt="smiles",
            resolution=448,
            max_new_tokens=256,
            region="page",
            default_checkpoint=None,
            summary="read a chemical structure",
        ),
        "music": _spec(
            name="music",
            prompt="kern",
            resolution=896,
            max_new_tokens=1024,
            region="page",
            default_checkpoint=None,
            summary="read sheet music as **kern",
        ),
        "layout": _spec(
            name="layout",
            prompt="detect table ; molecule ; music ; text ; figure",
            resolution=448,
            max_new_tokens=256,
            region="page",
            default_checkpoint=DEFAULT_MIX_CHECKPOINT,
            summary="find regions on the page",
        ),
        "caption": _spec(
            name="caption",
            prompt="caption en",
            resolution=448,
            max_new_tokens=256,
            region="page",
            default_checkpoint=DEFAULT_MIX_CHECKPOINT,
            summary="describe a figure",
        ),
        "ask": _spec(
            name="ask",
            prompt="answer en {question}",
            resolution=448,
            max_new_tokens=128,
            region="page",
            default_checkpoint=DEFAULT_MIX_CHECKPOINT,
            summary="answer a question about the page",
        ),
    }
)
