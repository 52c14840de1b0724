"""Assembling results: tiles merged into one text result, page status, document tables."""

from __future__ import annotations

from docvlm.regions import merge_tile_lines
from docvlm.render import PageImage
from docvlm.results import Page, PageStatus, Result, TableResult, TextResult
from docvlm.stitch import stitch_tables
from parsers import Box

__all__ = ["clip", "document_tables", "merge_tiles", "page_status"]


def clip(box: Box, page: PageImage) -> Box:
    """``box`` cut to the page."""
    return Box(
        x0=max(0.0, box.x0),
        y0=max(0.0, box.y0),
        x1=min(float(page.image.width), box.x1),
        y1=min(float(page.image.height), box.y1),
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
