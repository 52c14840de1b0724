"""Tables split across pages (or cut by a region boundary) joined into one table.

Two table results are one table when the second continues the first: on the next page,
or right below it on the same page; the same number of columns; and either no header
or a header that repeats the first's (it is then dropped). The joined result keeps the
provenance of every part in ``parts``.
"""

from __future__ import annotations

from collections.abc import Sequence

from docvlm.results import TablePart, TableResult
from parsers import Table

__all__ = ["continues", "join_tables", "stitch_tables"]

#: Largest gap (as a share of the first part's height) between parts on one page.
SAME_PAGE_GAP = 0.25


def _header(table: Table) -> list[tuple[int, int, str]]:
    return [(c.col, c.colspan, c.text) for c in table.cells if c.row < table.header_rows]


def continues(first: TableResult, second: TableResult) -> bool:
    """True when ``second`` reads as the continuation of ``first``."""
    a, b = first.table, second.table
    if a is None or b is None or first.source != second.source:
        return False
    if a.shape[1] != b.shape[1] or a.shape[1] == 0:
        return False
    if b.header_rows and _header(b) != _header(a):
        return False
    if second.page == first.page + 1:
        return True
    if second.page == first.page:
        gap = second.box.y0 - first.box.y1
        overlap = min(first.box.x1, second.box.x1) - max(first.box.x0, second.box.x0)
        return -1 <= gap <= SAME_PAGE_GAP * first.box.height and overlap > 0
    return False


def _parts(result: TableResult) -> tuple[TablePart, ...]:
    return result.parts or (TablePart(page=result.page, box=result.box, raw=result.raw),)


def join_tables(first: TableResult, second: TableResult) -> TableResult:
    """``second``'s rows under ``first``'s, a repeated header dropped; provenance of both."""
    a, b = first.table, second.table
    assert a is not None and b is not None
    skip = b.header_rows
    offset = a.shape[0] - skip
    moved = tuple(
        cell.model_copy(update={"row": cell.row + offset}) for cell in b.cells if cell.row >= skip
    )
    table = Table(
        cells=a.cells + moved,
        shape=(a.shape[0] + b.shape[0] - skip, a.shape[1]),
        header_rows=a.header_rows,
        repairs=a.repairs + b.repairs,
    )
    return first.model_copy(
        update={
            "table": table,
            "raw": first.raw + "\n" + second.raw,
            "parts": _parts(first) + _parts(second),
            "corrected": first.corrected or second.corrected,
        }
    )


def stitch_tables(results: Sequence[TableResult]) -> list[TableResult]:
    """Tables of a document in order, with continued tables joined."""
    stitched: list[TableResult] = []
    for result in results:
        if result.status != "ok" or result.table is None:
            stitched.append(result)
            continue
        previous = stitched[-1] if stitched else None
        last_part = _parts(previous)[-1] if previous else None
        if previous is not None and last_part is not None and previous.status == "ok":
            tail = previous.model_copy(update={"page": last_part.page, "box": last_part.box})
            if continues(tail, result):
                stitched[-1] = join_tables(previous, result)
                continue
        stitched.append(result)
    return stitched
