"""``/v1/documents`` and ``/v1/documents/{number}``: the archive's records, as the viewer
lists and opens them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query

from docvlm.document import Document
from docvlm.server.archive import Archive
from docvlm.server.state import Given

__all__ = ["document_or_404", "router"]

router = APIRouter()


@router.get("/v1/documents")
def documents(
    service: Given, offset: int = Query(0, ge=0), limit: int = Query(200, ge=1, le=5000)
) -> dict[str, Any]:
    """The archive's documents, ``limit`` from ``offset``, with their suspect counts."""
    total, window = service.archive.summaries(offset, limit)
    return {"total": total, "documents": [s.model_dump() for s in window]}


@router.get("/v1/documents/{number}", response_model=Document)
def document(number: int, service: Given) -> Document:
    return document_or_404(service.archive, number)


def document_or_404(archive: Archive, number: int) -> Document:
    try:
        return archive.document(number)
    except KeyError:
        raise HTTPException(404, f"no document {number} (it may have been dropped)") from None
