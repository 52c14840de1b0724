"""``/v1/review``: the review queue of ``docvlm review OUT --json``, for the viewer.

The items are ranked by ``docvlm.archive.review.rank`` over the archive's index (each
document's ``review_items``, kept when it is indexed and again after a correction), with
the pages marked reviewed left out: the same list, in the same order, as the command
prints for the same output. Beside each item, ``documents`` holds the viewer's number of
its document, to open it (``#/documents/N/pages/P``).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from docvlm.archive.review import ReviewItem, rank
from docvlm.server.state import Given
from docvlm.tasks import TASKS

__all__ = ["Queue", "router"]

router = APIRouter()


class Queue(BaseModel):
    """The review queue, weakest first, and where each item's document is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    items: list[ReviewItem] = Field(description="what docvlm review OUT --json prints")
    documents: list[int] = Field(description="per item, the id of its document in the viewer")


@router.get("/v1/review", response_model=Queue)
def review_queue(
    service: Given,
    below: float | None = Query(None, ge=0, le=1, description="as docvlm review --below"),
    task: str | None = Query(None, description="as docvlm review --task"),
    limit: int = Query(50, ge=0, le=1_000_000, description="at most so many; 0: all"),
) -> Queue:
    """The results that most need a person, weakest first (docs/review.md), as ``docvlm
    review OUT --json`` lists them with the same options."""
    if task is not None and task not in TASKS:
        raise HTTPException(422, f"unknown task {task!r}: one of {', '.join(TASKS)}")
    entries = service.archive.entries()
    items = rank(
        ((entry.summary.source, entry.review_items()) for entry in entries),
        below=below,
        task=task,
        limit=limit or None,
        reviewed=service.archive.reviewed(),
    )
    numbers = {entry.summary.source: entry.summary.id for entry in entries}  # last written
    return Queue(items=items, documents=[numbers[item.source] for item in items])
