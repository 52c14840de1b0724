"""Assembling results: tiles merged into one text result, page status, document tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from docvlm.reading.regions import merge_tile_lines
from docvlm.reading.render import PageImage
from docvlm.reading.stitch import stitch_tables
from docvlm.reading.turn import Turn
from docvlm.results import (
    LayoutResult,
    Page,
    PageStatus,
    Result,
    TableResult,
    TextResult,
)
from parsers import Box

__all__ = ["clip", "document_tables", "make_page", "merge_tiles", "page_status"]


def clip(box: Box, page: PageImage | tuple[int, int]) -> Box:
    """``box`` cut to the page (a rendered page, or its width and height in pixels)."""
    width, height = page.image.size if isinstance(page, PageImage) else page
    return Box(
        x0=min(max(0.0, box.x0), float(width)),
        y0=min(max(0.0, box.y0), float(height)),
        x1=max(min(float(width), box.x1), 0.0),
        y1=max(min(float(height), box.y1), 0.0),
    )


#: What a page's warnings say about a result that did not end normally.
STOP_WARNINGS = {
    "length": "{task} output was cut at the token limit (max_new_tokens): it is incomplete",
    "repetition": "{task} output looped and was stopped early: it is suspect",
}


def _clipped(result: Result, size: tuple[int, int]) -> Result:
    """The result with every box cut to the page: a square crop's padding (and a model's
    coordinates) can reach past the page's edges."""

    def cut(item: Any) -> Any:
        box = getattr(item, "box", None)
        return item if box is None else item.model_copy(update={"box": clip(box, size)})

    update: dict[str, Any] = {"box": clip(result.box, size)}
    if isinstance(result, LayoutResult):
        update["regions"] = tuple(cut(region) for region in result.regions)
    elif isinstance(result, TextResult):
        update["lines"] = tuple(cut(line) for line in result.lines)
    elif isinstance(result, TableResult) and result.table is not None:
        cells = tuple(cut(cell) for cell in result.table.cells)
        update["table"] = result.table.model_copy(update={"cells": cells})
    return result.model_copy(update=update)


def make_page(
    number: int,
    size: tuple[int, int],
    dpi: float | None,
    results: Sequence[Result],
    warnings: Sequence[str] = (),
    turn: Turn | None = None,
) -> Page:
    """A read page: boxes clipped to it, and a warning for each cut-off or looping result
    and for what was not read for want of ink. With the ``turn`` the page was read by,
    boxes are mapped back to the page as scanned (``size`` is then the read image's)."""
    if turn is not None:
        results, size = turn.results_to_page(results), turn.page_size
    kept = [_clipped(result, size) for result in results]
    notes = [STOP_WARNINGS[r.stop].format(task=r.task) for r in kept if r.stop in STOP_WARNINGS]
    blank = [r for r in kept if r.stop == "blank"]
    if blank and len(blank) == len(kept):
        notes.insert(0, f"page {number}: blank (no ink), not read")
    else:
        notes += [f"page {number}: a {r.task} region is blank (no ink), not read" for r in blank]
    return Page(
        number=number,
        width=size[0],
        height=size[1],
        dpi=dpi,
        status=page_status(kept),
        results=tuple(kept),
        warnings=(*warnings, *dict.fromkeys(notes)),
        **({} if turn is None else turn.record()),
    )


def merge_tiles(parsed: list[Result], region: Box) -> Result:
    """One text result for a region read as tiles: lines deduplicated across overlaps,
    raw outputs joined by form feeds, the lowest confidence and any abnormal stop kept."""
    texts = [r for r in parsed if isinstance(r, TextResult)]
    lines = merge_tile_lines([r.box for r in texts], [r.lines for r in texts])
    failed = [r for r in texts if r.status != "ok"]
    first = texts[0]
    scores = [r.confidence for r in texts if r.confidence is not None]
    stops = [r.stop for r in texts if r.stop and r.stop != "eos"]
    return TextResult(
        confidence=min(scores) if scores else None,
        stop=stops[0] if stops else first.stop,
        source=first.source,
        page=first.page,
        checkpoint=first.checkpoint,
        prompt=first.prompt,
        box=region,
        raw="\f".join(r.raw for r in texts),
        lines=tuple(lines),
        status="parse_error" if failed else "ok",
        error="; ".join(r.error or "" for r in failed) or None,
    )


def page_status(results: list[Result]) -> PageStatus:
    return "parse_error" if any(r.status != "ok" for r in results) else "ok"


def document_tables(pages: list[Page]) -> tuple[TableResult, ...]:
    found = [r for page in pages for r in page.results if isinstance(r, TableResult)]
    return tuple(stitch_tables(found))
