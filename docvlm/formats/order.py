"""One reading order per page, shared by every format.

When layout ran (the page holds a ``LayoutResult`` with regions), the order is that of the
layout regions, and each other result takes the place of the region it was read from (the
one its box overlaps most; a result matching no region is placed by its own box). Without
layout, each result keeps its place on the page and a text result is split into blocks:
its lines top to bottom within columns found from the line boxes.

Columns come from the horizontal projection profile of the narrow line boxes: a gutter is
a run of x where (almost) no narrow box lies, with boxes on both sides. A line that crosses
a gutter (a title, a full-width paragraph or caption) ends the band of columns above it,
so a page reads: header, left column, right column, full-width footer. Formats write the
blocks in this order, so the text of the Markdown, the hOCR, ALTO, PAGE and the searchable
PDF is the same.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from docvlm.results import (
    AnswerResult,
    CaptionResult,
    LayoutResult,
    MoleculeResult,
    Page,
    Result,
    TableResult,
    TextResult,
)
from parsers import Box, Cell, Table, TextLine

__all__ = ["Block", "BlockKind", "Line", "cell_box", "column_groups", "reading_order"]

BlockKind = Literal["text", "table", "molecule", "music", "caption", "ask"]

#: A box at least this share of the lines' extent wide is not used to find gutters.
_WIDE = 0.55


@dataclass(frozen=True)
class Line:
    """A line of text at its place on the page (page pixels).

    ``estimated`` is True when the model gave no box for it and the box was derived from
    its block (an equal strip of the block, a table cell's grid slot, or the block itself).
    """

    text: str
    box: Box
    estimated: bool = False


@dataclass(frozen=True)
class Block:
    """A piece of the page in reading order: what it is, where, its lines, its source.

    ``kind`` is the task that read it. ``lines`` hold the block's searchable text: a text
    block's lines, a table's non-empty cells (row-major), a molecule's SMILES, a caption or
    an answer as one line; a music block has none (kern is not text to search).
    ``label`` is the layout region's label when layout ran.
    """

    kind: BlockKind
    box: Box
    lines: tuple[Line, ...]
    result: Result
    label: str | None = None

    @property
    def text(self) -> str:
        """The block's lines joined by newlines."""
        return "\n".join(line.text for line in self.lines)


def reading_order(page: Page) -> list[Block]:
    """The page's blocks in reading order (see the module docstring for the rule)."""
    layout = next((r for r in page.results if isinstance(r, LayoutResult) and r.regions), None)
    results = [r for r in page.results if not isinstance(r, LayoutResult)]
    if layout is None:
        return [block for result in results for block in _blocks(result, split=True)]
    regions = [d.box for d in layout.regions]
    matched = [_best_region(r.box, regions) for r in results]
    boxes = regions + [r.box for r, m in zip(results, matched, strict=True) if m is None]
    flat = [i for group in column_groups(boxes, min_side=1) for i in group]
    rank = {index: place for place, index in enumerate(flat)}
    unmatched = iter(range(len(regions), len(boxes)))
    keys = [rank[m if m is not None else next(unmatched)] for m in matched]
    ordered = [r for _, r in sorted(zip(keys, results, strict=True), key=lambda kr: kr[0])]
    labels = {
        id(r): layout.regions[m].label
        for r, m in zip(results, matched, strict=True)
        if m is not None
    }
    return [
        block
        for result in ordered
        for block in _blocks(result, split=False, label=labels.get(id(result)))
    ]


def column_groups(boxes: Sequence[Box], min_side: int | None = None) -> list[list[int]]:
    """Indices of ``boxes`` grouped into blocks, in reading order.

    Each group is a run of boxes of one column within a band (top to bottom), or a run of
    boxes that cross a gutter; boxes on the same row read left to right. A gutter needs
    ``min_side`` boxes wholly on each side (by default 2 or a tenth of the boxes: a few
    short lines at a ragged edge make no column); layout regions use 1.
    """
    boxes = list(boxes)
    if not boxes:
        return []
    if min_side is None:
        min_side = max(2, len(boxes) // 10)
    gutters = _gutters(boxes, min_side)
    groups: list[list[int]] = []
    band: dict[int, list[int]] = {}
    spanning: list[int] = []

    def flush_band() -> None:
        groups.extend(band[column] for column in sorted(band))
        band.clear()

    for index in _rows_order(boxes, range(len(boxes))):
        box = boxes[index]
        if any(box.x0 < g0 and box.x1 > g1 for g0, g1 in gutters):
            flush_band()
            spanning.append(index)
            continue
        if spanning:
            groups.append(spanning)
            spanning = []
        centre = (box.x0 + box.x1) / 2
        band.setdefault(sum(centre > (g0 + g1) / 2 for g0, g1 in gutters), []).append(index)
    flush_band()
    if spanning:
        groups.append(spanning)
    return groups


def _gutters(boxes: list[Box], min_side: int) -> list[tuple[float, float]]:
    """Column gutters (x0, x1): runs of the narrow boxes' x profile covered by at most a
    fifth of the most boxes any x has, at least 2% of the boxes' extent wide, with
    ``min_side`` boxes wholly on each side, and crossed by at most a third of all boxes."""
    left, right = min(b.x0 for b in boxes), max(b.x1 for b in boxes)
    extent = right - left
    narrow = [b for b in boxes if b.width <= _WIDE * extent]
    if extent <= 0 or len(narrow) < 2 * min_side:
        return []
    bins = 400
    step = extent / bins
    cover = [0] * bins
    for box in narrow:
        start = int((box.x0 - left) / step)
        stop = min(bins, max(start + 1, math.ceil((box.x1 - left) / step)))
        for i in range(start, stop):
            cover[i] += 1
    # a few stray boxes bridging a gutter (a centred heading) do not close it
    noise = int(0.2 * max(cover))
    min_gap = 0.02 * extent  # narrower than any real gutter, wider than word spacing
    gutters = []
    i = 0
    while i < bins:
        if cover[i] > noise:
            i += 1
            continue
        j = i
        while j < bins and cover[j] <= noise:
            j += 1
        g0, g1 = left + i * step, left + j * step
        if i > 0 and j < bins and g1 - g0 >= min_gap:
            before = sum(b.x1 <= g0 + step for b in narrow)
            after = sum(b.x0 >= g1 - step for b in narrow)
            crossing = sum(b.x0 < g0 and b.x1 > g1 for b in boxes)
            # most lines of a one-column page cross any gap between line fragments; only
            # headings, captions and footers cross a real gutter
            if before >= min_side and after >= min_side and 3 * crossing <= len(boxes):
                gutters.append((g0, g1))
        i = j
    return gutters


def _rows_order(boxes: list[Box], indices: range | list[int]) -> list[int]:
    """``indices`` top to bottom; boxes whose centres are within half a line height of
    the row's first box are one row and read left to right."""
    by_y = sorted(indices, key=lambda i: (boxes[i].y0 + boxes[i].y1) / 2)
    if not by_y:
        return []
    half = 0.5 * statistics.median(max(boxes[i].height, 1e-9) for i in by_y)
    rows: list[list[int]] = []
    top = math.inf
    for index in by_y:
        centre = (boxes[index].y0 + boxes[index].y1) / 2
        if not rows or centre - top > half:
            rows.append([])
            top = centre
        rows[-1].append(index)
    return [i for row in rows for i in sorted(row, key=lambda i: boxes[i].x0)]


def _best_region(box: Box, regions: list[Box]) -> int | None:
    scores = [box.iou(region) for region in regions]
    best = max(range(len(regions)), key=scores.__getitem__, default=None)
    return best if best is not None and scores[best] >= 0.3 else None


def _union(boxes: Sequence[Box]) -> Box:
    return Box(
        x0=min(b.x0 for b in boxes),
        y0=min(b.y0 for b in boxes),
        x1=max(b.x1 for b in boxes),
        y1=max(b.y1 for b in boxes),
    )


def _strips(texts: Sequence[str], box: Box) -> tuple[Line, ...]:
    """Lines without boxes, given equal horizontal strips of ``box``."""
    step = box.height / max(1, len(texts))
    return tuple(
        Line(
            text=t,
            box=Box(x0=box.x0, y0=box.y0 + i * step, x1=box.x1, y1=box.y0 + (i + 1) * step),
            estimated=True,
        )
        for i, t in enumerate(texts)
    )


def _text_lines(lines: Sequence[TextLine], frame: Box) -> list[Line]:
    """Lines with their boxes; a boxless line after a boxed one (the model split it with
    ``;``) shares its box, and a result without any box is cut into strips of ``frame``."""
    if all(line.box is None for line in lines):
        return list(_strips([line.text for line in lines], frame))
    out: list[Line] = []
    for line in lines:
        if line.box is not None:
            out.append(Line(text=line.text, box=line.box))
        else:
            anchor = out[-1].box if out else frame
            out.append(Line(text=line.text, box=anchor, estimated=True))
    return out


def _text_blocks(result: TextResult, split: bool, label: str | None) -> list[Block]:
    lines = _text_lines(result.lines, result.box)
    if not lines:
        return [Block(kind="text", box=result.box, lines=(), result=result, label=label)]
    groups = column_groups([line.box for line in lines])
    if not split:
        groups = [[i for group in groups for i in group]]
    return [
        Block(
            kind="text",
            box=_union([lines[i].box for i in group]),
            lines=tuple(lines[i] for i in group),
            result=result,
            label=label,
        )
        for group in groups
    ]


def cell_box(result: TableResult, cell: Cell) -> tuple[Box, bool]:
    """A table cell's box and whether it is estimated: the model's coords when it wrote
    them, else the cell's slot in an even grid over the table's box."""
    if cell.box is not None:
        return cell.box, False
    rows, cols = result.table.shape if result.table else (1, 1)
    box = result.box
    dy, dx = box.height / max(1, rows), box.width / max(1, cols)
    slot = Box(
        x0=box.x0 + cell.col * dx,
        y0=box.y0 + cell.row * dy,
        x1=box.x0 + (cell.col + cell.colspan) * dx,
        y1=box.y0 + (cell.row + cell.rowspan) * dy,
    )
    return slot, True


def _table_box(result: TableResult, table: Table) -> Box:
    """A table's box, which holds every cell. A table read from a whole page sits where
    its cells are when the model placed them all; when it placed some, the others get
    slots of the record's box (``cell_box``), so the table is the record's box (grown to
    any placed cell that reaches past it)."""
    placed = [cell.box for cell in table.cells if cell.box is not None]
    if placed and len(placed) == len(table.cells):
        return _union(placed)
    return _union([result.box, *placed])


def _table_lines(result: TableResult) -> tuple[Line, ...]:
    if result.table is None:
        return ()
    out = []
    for cell in result.table.cells:
        if cell.text:
            box, estimated = cell_box(result, cell)
            out.append(Line(text=cell.text, box=box, estimated=estimated))
    return tuple(out)


def _blocks(result: Result, split: bool, label: str | None = None) -> list[Block]:
    """The blocks of one result: text split into column runs when ``split``."""
    if isinstance(result, TextResult):
        return _text_blocks(result, split, label)
    lines: tuple[Line, ...] = ()
    if isinstance(result, TableResult):
        lines = _table_lines(result)
    elif isinstance(result, MoleculeResult) and result.molecule and result.molecule.smiles:
        lines = (Line(text=result.molecule.smiles, box=result.box, estimated=True),)
    elif isinstance(result, CaptionResult | AnswerResult) and result.text:
        lines = _strips(result.text.splitlines() or [result.text], result.box)
    if isinstance(result, LayoutResult):  # regions order the page; they are no block
        return []
    box = result.box
    if isinstance(result, TableResult) and result.table is not None:
        box = _table_box(result, result.table)
    kind: BlockKind = result.task
    return [Block(kind=kind, box=box, lines=lines, result=result, label=label)]
