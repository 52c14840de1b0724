"""Records and their keys: the content hash of a source, the fingerprint of everything that
changes an answer, and a ``Document`` built (or renamed) from its pages.

These are plain functions so that every runner (the local one, a Ray Data job) writes the
same records and agrees on what is already done.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field

from docvlm.document import Document
from docvlm.reading.assemble import document_tables
from docvlm.results import Page

__all__ = ["JobKey", "ReadKey", "build_document", "content_hash", "renamed"]

_CHUNK = 1 << 20


def content_hash(data: bytes | Path | BinaryIO | io.BufferedIOBase) -> str:
    """SHA-256 (hex) of a file's or a buffer's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    if isinstance(data, bytes):
        digest.update(data)
    elif isinstance(data, Path):
        with data.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    else:
        start = data.tell()
        while chunk := data.read(_CHUNK):
            digest.update(chunk)
        data.seek(start)
    return digest.hexdigest()


def seekable(stream: BinaryIO) -> BinaryIO:
    """``stream`` itself when it can be read twice, else its bytes in a buffer with its
    name (a pipe or socket: hashed first, then rendered)."""
    if stream.seekable():
        return stream
    buffer = io.BytesIO(stream.read())
    buffer.name = getattr(stream, "name", "stream")
    return buffer


class ReadKey(BaseModel):
    """What makes one task's answer: the model, its prompt, input size and token limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    checkpoint: str
    prompt: str
    resolution: int
    max_new_tokens: int


class JobKey(BaseModel):
    """Everything that changes the answers for a page, apart from the page's own bytes.

    Two runs with equal keys read a page the same way, so one run's finished page is the
    other's too. The password and the output destination are deliberately not in it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reads: tuple[ReadKey, ...] = Field(description="each task's model, prompt, size, limit")
    dpi: int = Field(description="PDF rendering resolution")
    regions: Literal["page", "layout", "caller"] = Field(
        default="page", description="whole pages, layout-model regions, or the caller's"
    )
    pages: str | None = Field(default=None, description="the page selection, as given")

    def fingerprint(self) -> str:
        """A short, stable digest of the key (what the manifest stores)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:32]


def build_document(
    name: str,
    pages: Sequence[Page],
    *,
    sha256: str | None = None,
    error: str | None = None,
) -> Document:
    """A Document from its pages in order: ``success`` when every page read, ``partial``
    when some pages (or the rest of the source after ``error``) failed, else ``failure``."""
    failed = [p for p in pages if p.status == "error"]
    if error is not None:
        status = "partial" if pages else "failure"
    elif not failed:
        status = "success"
    else:
        status = "partial" if len(failed) < len(pages) else "failure"
    reasons = error or "; ".join(f"page {p.number}: {p.error}" for p in failed) or None
    return Document(
        source=name,
        sha256=sha256,
        status=status,
        error=reasons,
        pages=tuple(pages),
        tables=document_tables(list(pages)),
    )


def renamed(document: Document, name: str) -> Document:
    """The same Document recorded under another name (the same bytes met twice)."""
    pages = tuple(
        page.model_copy(
            update={"results": tuple(r.model_copy(update={"source": name}) for r in page.results)}
        )
        for page in document.pages
    )
    tables = tuple(t.model_copy(update={"source": name}) for t in document.tables)
    return document.model_copy(update={"source": name, "pages": pages, "tables": tables})
