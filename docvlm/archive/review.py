"""The pages that need a person: every result of a conversion output, weakest first, with
its confidence and why it is listed (``docvlm review OUT``; docs/review.md).

An item is one result on one page (``result`` is its index on the page), or a page that
failed (``result`` and ``task`` empty), or a source that could not be read (``page``
empty too). Its ``confidence`` is the result's weakest part (``result_confidence``: the
lowest line or cell, else the whole answer). Its ``reasons`` come from one fixed
vocabulary, ``REASONS``. Items are ranked by tier, then by confidence, lowest first:

1. broken or incomplete: ``document_failure``, ``page_error``, ``parse_error``,
   ``repetition``, ``length``;
2. unknown: ``no_confidence`` (no log-probabilities were recorded);
3. the rest, whose other flags (``suspect``, ``blank``, ``turned``) are shown but do not
   move them.

Pages a person marked reviewed (``docvlm correct``'s ``"reviewed": true``, or the viewer)
are left out: ``reviewed_pages`` reads them from the corrections log. So is a result a
person vouched for: corrected whole (a ``value`` correction) or on a reviewed page. One
corrected only in some lines or cells stays, ranked as before, with ``partly_corrected``
(``partly_corrected`` reads them from the log; docs/corrections.md).

With ``below``, only items under it are kept (and are marked ``low_confidence``), along
with those of tiers 1 and 2, which no number shows to be good enough.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from docvlm.archive.edits import Correction
from docvlm.document import Document
from docvlm.reading.confidence import result_confidence
from docvlm.results import Page, Result, TableResult

__all__ = [
    "REASONS",
    "Reason",
    "ReviewItem",
    "partly_corrected",
    "rank",
    "review",
    "review_items",
    "review_schema",
    "reviewed_pages",
]

Reason = Literal[
    "document_failure",
    "page_error",
    "parse_error",
    "repetition",
    "length",
    "no_confidence",
    "low_confidence",
    "suspect",
    "blank",
    "turned",
    "partly_corrected",
]

#: Each reason and what it means (docs/review.md prints this table).
REASONS: dict[Reason, str] = {
    "document_failure": "the source could not be read at all",
    "page_error": "the page failed (it could not be rendered or read)",
    "parse_error": "the output did not parse (status parse_error)",
    "repetition": "the output looped and the repetition guard stopped it",
    "length": "the output was cut at the token limit (max_new_tokens)",
    "no_confidence": "no log-probabilities were recorded (an engine that gives none, an "
    "older record): the confidence is unknown, not low",
    "low_confidence": "the confidence is below the --below threshold",
    "suspect": "the output parsed only after repairs (a table's cells or rows left open, "
    "spans clamped: Table.repairs)",
    "blank": "the region had no ink, so the model was not asked: nothing was read",
    "turned": "the page was turned to be read (its orientation was corrected)",
    "partly_corrected": "a person corrected only some of its lines or cells: the rest is "
    "unchecked until it is corrected whole or its page is marked reviewed",
}
_BROKEN = frozenset({"document_failure", "page_error", "parse_error", "repetition", "length"})


class ReviewItem(BaseModel):
    """One thing for a person to look at, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="the document's source, as recorded")
    sha256: str | None = Field(description="SHA-256 of the source's bytes (hex)")
    page: int | None = Field(description="page number from 1; None: the source was not read")
    result: int | None = Field(description="index of the result on its page; None: the page")
    task: str | None = Field(description="the result's task; None for a page or a source")
    confidence: float | None = Field(
        ge=0,
        le=1,
        description="the result's weakest part (lowest line or cell, else the whole answer), "
        "a geometric mean token probability; None when unknown",
    )
    reasons: tuple[Reason, ...] = Field(description="why it is listed (docs/review.md)")
    detail: str | None = Field(default=None, description="the error, when there is one")

    def rank(self) -> tuple[int, float, str, int, int]:
        """Sort key, weakest first (see the module docstring)."""
        tier = 0 if _BROKEN & set(self.reasons) else 1 if "no_confidence" in self.reasons else 2
        confidence = -1.0 if self.confidence is None else self.confidence
        result = -1 if self.result is None else self.result
        return (tier, confidence, self.source, self.page or 0, result)


def _turned(page: Page) -> bool:
    # the page orientation fields arrive with orientation support; older pages have none
    fields: dict[str, Any] = page.model_dump(include={"rotation"})
    return bool(fields.get("rotation"))


def _result_item(
    document: Document, page: Page, index: int, result: Result, *, partly: bool = False
) -> ReviewItem:
    reasons: list[Reason] = []
    if result.status == "parse_error":
        reasons.append("parse_error")
    if result.stop in ("repetition", "length", "blank"):
        reasons.append(result.stop)
    confidence = result_confidence(result)
    if confidence is None and result.stop != "blank":
        reasons.append("no_confidence")
    if isinstance(result, TableResult) and result.table is not None and result.table.repairs:
        reasons.append("suspect")
    if _turned(page):
        reasons.append("turned")
    if partly:
        reasons.append("partly_corrected")
    return ReviewItem(
        source=document.source,
        sha256=document.sha256,
        page=page.number,
        result=index,
        task=result.task,
        confidence=None if confidence is None else min(1.0, max(0.0, confidence)),
        reasons=tuple(reasons),
        detail=result.error,
    )


def review_items(
    document: Document, partial: Collection[tuple[str, int, int]] = ()
) -> Iterator[ReviewItem]:
    """Every item of one document: its results (but those a person corrected, unless only
    in parts: ``partial``, from ``partly_corrected``), its failed pages, or its failure."""
    if not document.pages and document.status == "failure":
        yield ReviewItem(
            source=document.source,
            sha256=document.sha256,
            page=None,
            result=None,
            task=None,
            confidence=None,
            reasons=("document_failure",),
            detail=document.error,
        )
    for page in document.pages:
        if page.status == "error":
            yield ReviewItem(
                source=document.source,
                sha256=document.sha256,
                page=page.number,
                result=None,
                task=None,
                confidence=None,
                reasons=("page_error",),
                detail=page.error,
            )
        for index, result in enumerate(page.results):
            partly = result.corrected and (document.sha256, page.number, index) in partial
            if not result.corrected or partly:  # else a person has read and corrected it
                yield _result_item(document, page, index, result, partly=partly)


def review(
    documents: Iterable[Document],
    *,
    below: float | None = None,
    task: str | None = None,
    limit: int | None = None,
    reviewed: Collection[tuple[str, int]] = (),
    partial: Collection[tuple[str, int, int]] = (),
) -> list[ReviewItem]:
    """The items of ``documents``, weakest first (the module docstring says how they are
    ranked and what ``below`` keeps); ``task`` keeps one task's results, ``limit`` the
    first so many; pages in ``reviewed`` (sha256, page) are left out; results in
    ``partial`` (sha256, page, result: ``partly_corrected``) stay though corrected. A
    source recorded twice (a retried file) counts once, as last written."""
    return rank(
        ((document.source, review_items(document, partial)) for document in documents),
        below=below,
        task=task,
        limit=limit,
        reviewed=reviewed,
    )


def rank(
    items_by_source: Iterable[tuple[str, Iterable[ReviewItem]]],
    *,
    below: float | None = None,
    task: str | None = None,
    limit: int | None = None,
    reviewed: Collection[tuple[str, int]] = (),
) -> list[ReviewItem]:
    """``review`` over items already listed per document (``review_items``), as
    (source, items) in the order the records were written: the viewer keeps them in its
    index and ranks them here, so its queue is the command's."""
    latest: dict[str, list[ReviewItem]] = {}
    for source, items in items_by_source:
        latest[source] = [
            _with_threshold(item, below)
            for item in items
            if (task is None or item.task == task)
            and (item.page is None or (item.sha256, item.page) not in reviewed)
        ]
    kept = [
        item
        for items in latest.values()
        for item in items
        if below is None or item.rank()[0] < 2 or "low_confidence" in item.reasons
    ]
    if limit is not None:
        return heapq.nsmallest(limit, kept, key=ReviewItem.rank)
    return sorted(kept, key=ReviewItem.rank)


def reviewed_pages(entries: Iterable[Correction]) -> set[tuple[str, int]]:
    """The (sha256, page) pairs whose last review mark in the corrections log says
    reviewed (a later ``"reviewed": false`` takes a page back into the queue)."""
    marks: dict[tuple[str, int], bool] = {}
    for entry in entries:
        if entry.reviewed is not None:
            marks[(entry.sha256, entry.page)] = entry.reviewed
    return {page for page, mark in marks.items() if mark}


def partly_corrected(entries: Iterable[Correction]) -> set[tuple[str, int, int]]:
    """The (sha256, page, result) of each result the corrections log corrects only in
    parts (some lines or cells) that no person vouched for: not corrected whole (a
    ``value``), on a page not marked reviewed. Such a result is no training example and
    stays in the review queue (docs/corrections.md); both ask this function."""
    entries = list(entries)
    parts: set[tuple[str, int, int]] = set()
    whole: set[tuple[str, int, int]] = set()
    for entry in entries:
        if entry.result is not None:
            key = (entry.sha256, entry.page, entry.result)
            (whole if entry.value is not None else parts).add(key)
    reviewed = reviewed_pages(entries)
    return {key for key in parts - whole if key[:2] not in reviewed}


def _with_threshold(item: ReviewItem, below: float | None) -> ReviewItem:
    if below is None or item.confidence is None or item.confidence >= below:
        return item
    return item.model_copy(update={"reasons": (*item.reasons, "low_confidence")})


_ITEMS = TypeAdapter(list[ReviewItem])


def review_schema() -> dict[str, Any]:
    """JSON Schema of ``docvlm review --json``: a list of items, weakest first."""
    schema = _ITEMS.json_schema(mode="serialization")
    schema["title"] = "Review"
    schema["description"] = "docvlm review --json: what needs a person, weakest first"
    return schema
