"""``/v1/suspects``: the results across the archive that a reviewer should look at."""

from __future__ import annotations

from fastapi import APIRouter, Query

from docvlm.server.archive import Suspect
from docvlm.server.state import Given

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/suspects", response_model=list[Suspect])
def suspects(
    service: Given,
    min_confidence: float | None = Query(None, ge=0, le=1),
    limit: int = Query(1000, ge=1, le=100_000),
) -> list[Suspect]:
    """Results that did not parse, were cut off or stopped repeating; pages and
    documents that failed; with ``min_confidence``, results read with less."""
    return service.archive.suspects(min_confidence, limit)
