"""What the viewer shows: a numbered list of Documents, their suspect results, their pages.

``UploadArchive`` keeps the last documents converted by the service with the uploaded
bytes (bounded), so their pages can be drawn. ``FileArchive`` is a conversion output read
from disk (a JSONL of Documents written by ``docvlm convert``, or what ``docvlm.archive.sinks``
reads back); its pages are re-rendered on demand from each Document's source path.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from docvlm.archive.review import Reason as ReviewReason
from docvlm.archive.review import ReviewItem, review_items
from docvlm.document import Document
from docvlm.errors import InputError
from docvlm.reading.pdf import InProcessPdf, PdfData, PdfReader
from docvlm.reading.render import PageFailure, Source, load_pages
from docvlm.results import Page
from docvlm.settings import Settings

__all__ = [
    "PDFIUM_LOCK",
    "Archive",
    "DocumentSummary",
    "Entry",
    "Kept",
    "LockedPdf",
    "PageImageError",
    "PngCache",
    "Suspect",
    "UploadArchive",
    "filter_suspects",
    "find_page",
    "index_entry",
    "render_page",
    "suspects_of",
]

#: The longest side of a page image sent to the viewer; boxes scale with the image.
VIEW_MAX_SIDE = 2000
Reason = Literal[
    "document_failure", "page_error", "parse_error", "length", "repetition", "low_confidence"
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Suspect(_Frozen):
    """A result (or page, or document) a reviewer should look at, and why."""

    document: int = Field(description="document id in the archive")
    source: str
    page: int | None = Field(default=None, description="page number, None for the document")
    index: int | None = Field(default=None, description="result index on the page")
    task: str | None = None
    reason: Reason
    detail: str | None = Field(default=None, description="the error, or the stop reason")
    confidence: float | None = None


class DocumentSummary(_Frozen):
    """One line of the archive list."""

    id: int
    source: str
    status: str
    pages: int
    results: int
    suspects: int


class PageImageError(Exception):
    """The page cannot be drawn (source gone, not a file, or unreadable); says why."""


def suspects_of(
    document: Document, number: int, partial: Collection[tuple[str, int, int]] = ()
) -> list[Suspect]:
    """The suspect parts of ``document`` (id ``number``): a failed document, failed pages,
    results that did not parse, were cut at the token limit, or stopped repeating; a
    result a person corrected is not one (it has been read), unless only in some lines or
    cells (in ``partial``: ``docvlm.archive.review.partly_corrected``)."""
    found: list[Suspect] = []
    if document.status == "failure" and not document.pages:
        found.append(
            Suspect(
                document=number,
                source=document.source,
                reason="document_failure",
                detail=document.error,
            )
        )
    for page in document.pages:
        if page.status == "error":
            found.append(
                Suspect(
                    document=number,
                    source=document.source,
                    page=page.number,
                    reason="page_error",
                    detail=page.error,
                )
            )
        for index, result in enumerate(page.results):
            reason: Reason | None = None
            if result.corrected and (document.sha256, page.number, index) not in partial:
                continue
            if result.status == "parse_error":
                reason = "parse_error"
            elif result.stop in ("length", "repetition"):
                reason = result.stop
            if reason is not None:
                found.append(
                    Suspect(
                        document=number,
                        source=document.source,
                        page=page.number,
                        index=index,
                        task=result.task,
                        reason=reason,
                        detail=result.error if reason == "parse_error" else result.stop,
                        confidence=result.confidence,
                    )
                )
    return found


#: pdfium must never run in two threads at once; the server's threads share this lock.
PDFIUM_LOCK = threading.Lock()


class LockedPdf:
    """A ``PdfReader`` that takes ``PDFIUM_LOCK`` for each call of the one it wraps."""

    def __init__(self, reader: PdfReader) -> None:
        self._reader = reader

    def open(self, data: PdfData, password: str | None, name: str) -> list[tuple[float, float]]:
        with PDFIUM_LOCK:
            return self._reader.open(data, password, name)

    def render(self, index: int, scale: float, name: str) -> Image.Image:
        with PDFIUM_LOCK:
            return self._reader.render(index, scale, name)

    def close(self) -> None:
        with PDFIUM_LOCK:
            self._reader.close()


def render_page(source: Source, page: Page, *, password: str | None, settings: Settings) -> bytes:
    """``page`` of ``source`` as PNG, rendered as the conversion did (its DPI, the pixel
    limit) at the size the results' boxes refer to, then reduced to at most
    ``VIEW_MAX_SIDE`` pixels a side."""
    try:
        for item in load_pages(
            source,
            pages=[page.number],
            password=password,
            dpi=round(page.dpi) if page.dpi else settings.dpi,
            limits=settings.limits(),
            reader=LockedPdf(InProcessPdf()),
        ):
            if isinstance(item, PageFailure):
                raise PageImageError(str(item.error))
            image = item.image
            if page.width and page.height and image.size != (page.width, page.height):
                # rendered at another DPI than recorded (Parquet keeps none): match the boxes
                image = image.resize((page.width, page.height), Image.Resampling.LANCZOS)
            image.thumbnail((VIEW_MAX_SIDE, VIEW_MAX_SIDE), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, "PNG", compress_level=3)
            return buffer.getvalue()
    except InputError as error:
        raise PageImageError(str(error)) from error
    raise PageImageError(f"{page.number} is not a page of the source")


class Archive(Protocol):
    """What the viewer's API reads."""

    def summaries(self, offset: int, limit: int) -> tuple[int, list[DocumentSummary]]:
        """The total count and one window of the document list."""
        ...

    def document(self, number: int) -> Document:
        """The document with id ``number``; raises ``KeyError`` when there is none."""
        ...

    def suspects(self, min_confidence: float | None, limit: int) -> list[Suspect]:
        """Suspect results across the archive, and with ``min_confidence`` the results
        read with less confidence than that."""
        ...

    def page_png(self, number: int, page: int) -> bytes:
        """The page image; raises ``KeyError`` or ``PageImageError``."""
        ...

    def entries(self) -> list[Entry]:
        """What is indexed of each document, in the order they were recorded."""
        ...

    def reviewed(self) -> set[tuple[str, int]]:
        """The pages (sha256, page) a person marked reviewed."""
        ...


#: A review item as the index keeps it (a tenth of a ``ReviewItem``'s memory): page,
#: result, task, confidence, reasons, detail; its document gives the source and sha256.
Kept = tuple[int | None, int | None, str | None, float | None, tuple[ReviewReason, ...], str | None]


@dataclass(frozen=True)
class Entry:
    """What an archive keeps in memory of one document: enough to list and filter it, and
    its items of the review queue (``docvlm.archive.review.review_items``)."""

    summary: DocumentSummary
    suspects: tuple[Suspect, ...]
    confident: tuple[tuple[int, int, str, float], ...]  # page, index, task, confidence
    sha256: str | None = None
    review: tuple[Kept, ...] = ()

    def review_items(self) -> Iterator[ReviewItem]:
        """The document's items of the review queue, as ``review_items`` listed them."""
        for page, result, task, confidence, reasons, detail in self.review:
            yield ReviewItem.model_construct(
                source=self.summary.source,
                sha256=self.sha256,
                page=page,
                result=result,
                task=task,
                confidence=confidence,
                reasons=reasons,
                detail=detail,
            )


def index_entry(
    number: int, document: Document, partial: Collection[tuple[str, int, int]] = ()
) -> Entry:
    """What is kept of ``document``; ``partial``: the results corrected only in parts
    (``docvlm.archive.review.partly_corrected``), still suspects and still in the queue."""
    flagged = tuple(suspects_of(document, number, partial))
    listed = {(s.page, s.index) for s in flagged}
    confident = tuple(
        (page.number, index, result.task, result.confidence)
        for page in document.pages
        for index, result in enumerate(page.results)
        if result.confidence is not None
        and (not result.corrected or (document.sha256, page.number, index) in partial)
        and (page.number, index) not in listed
    )
    summary = DocumentSummary(
        id=number,
        source=document.source,
        status=document.status,
        pages=len(document.pages),
        results=sum(len(p.results) for p in document.pages),
        suspects=len(flagged),
    )
    kept = tuple(
        (i.page, i.result, i.task, i.confidence, i.reasons, i.detail)
        for i in review_items(document, partial)
    )
    return Entry(summary, flagged, confident, document.sha256, kept)


def filter_suspects(
    entries: Iterable[Entry], min_confidence: float | None, limit: int
) -> list[Suspect]:
    found: list[Suspect] = []
    for entry in entries:
        found.extend(entry.suspects)
        if min_confidence is not None:
            found.extend(
                Suspect(
                    document=entry.summary.id,
                    source=entry.summary.source,
                    page=page,
                    index=index,
                    task=task,
                    reason="low_confidence",
                    detail=f"confidence {confidence:.2f}",
                    confidence=confidence,
                )
                for page, index, task, confidence in entry.confident
                if confidence < min_confidence
            )
        if len(found) >= limit:
            break
    return found[:limit]


class PngCache:
    """The last rendered page images (rendering a scan page takes a while)."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._items: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> bytes | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
            return self._items.get(key)

    def put(self, key: tuple[int, int], png: bytes) -> bytes:
        with self._lock:
            self._items[key] = png
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return png


def find_page(document: Document, number: int) -> Page:
    """Page ``number`` of ``document``; ``KeyError`` when it has none."""
    for page in document.pages:
        if page.number == number:
            return page
    raise KeyError(number)


class UploadArchive:
    """The documents converted by the service, newest last, with their uploads.

    Keeps at most ``keep`` documents and ``max_bytes`` of uploads; older ones are dropped
    (their ids then answer 404). An upload is bytes, or a file the archive then owns: it
    is deleted when its document is dropped.
    """

    def __init__(self, settings: Settings, *, keep: int = 32, max_bytes: int = 512 << 20) -> None:
        self._settings = settings
        self._keep = keep
        self._max_bytes = max_bytes
        self._items: OrderedDict[int, tuple[Entry, Document, bytes | Path, str | None]] = (
            OrderedDict()
        )
        self._next = 0
        self._lock = threading.Lock()
        self._pngs = PngCache()

    def add(self, document: Document, data: bytes | Path, password: str | None) -> int:
        """Keep ``document`` (and its source, to draw its pages); return its id."""
        with self._lock:
            number = self._next
            self._next += 1
            self._items[number] = (index_entry(number, document), document, data, password)
            held = sum(_size(item[2]) for item in self._items.values())
            while len(self._items) > max(self._keep, 1) or (
                held > self._max_bytes and len(self._items) > 1
            ):
                _, dropped = self._items.popitem(last=False)
                held -= _size(dropped[2])
                if isinstance(dropped[2], Path):
                    dropped[2].unlink(missing_ok=True)
            return number

    def summaries(self, offset: int, limit: int) -> tuple[int, list[DocumentSummary]]:
        with self._lock:
            items = [entry.summary for entry, *_ in self._items.values()]
        return len(items), items[offset : offset + limit]

    def document(self, number: int) -> Document:
        with self._lock:
            return self._items[number][1]

    def suspects(self, min_confidence: float | None, limit: int) -> list[Suspect]:
        with self._lock:
            entries = [entry for entry, *_ in self._items.values()]
        return filter_suspects(entries, min_confidence, limit)

    def entries(self) -> list[Entry]:
        with self._lock:
            return [entry for entry, *_ in self._items.values()]

    def reviewed(self) -> set[tuple[str, int]]:
        return set()  # an upload has no corrections

    def page_png(self, number: int, page: int) -> bytes:
        cached = self._pngs.get((number, page))
        if cached is not None:
            return cached
        with self._lock:
            _, document, data, password = self._items[number]
        png = render_page(
            data, find_page(document, page), password=password, settings=self._settings
        )
        return self._pngs.put((number, page), png)


def _size(data: bytes | Path) -> int:
    if isinstance(data, bytes):
        return len(data)
    try:
        return data.stat().st_size
    except OSError:
        return 0
