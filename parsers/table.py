"""Tables: the validated grid (``Table``, ``Cell``) and its HTML, written anew.

The model's markup is never passed through: ``parsers.table_reader.parse_table`` reads it
with a small tokenizer that knows only table tags, cells are placed on a grid honouring
rowspan and colspan, and ``Table.html`` is written anew from that grid with escaped text
and span attributes only.
Inside a cell the inline tags of PubTabNet's data (``b``, ``i``, ``sup``, ``sub``, ``br``)
are kept without attributes, and the text keeps its whitespace, so that a PubTabNet table
reads back to the very same HTML. Comments, processing instructions and CDATA are dropped.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import Field, computed_field

from parsers.base import Box, Frozen

if TYPE_CHECKING:
    import pandas

__all__ = [
    "INLINE_TAGS",
    "MAX_CELLS",
    "MAX_SPAN",
    "Cell",
    "Table",
    "safe_content",
    "sections_html",
    "span_attributes",
]

#: Largest rowspan/colspan taken as written; larger spans are clamped (and recorded).
MAX_SPAN = 1_000
#: Largest grid (rows x columns) accepted; a bigger one is refused as a hostile input. A
#: 4,096-token output holds at most about 2,000 cells; this bound keeps a call under a second.
MAX_CELLS = 50_000
#: Inline tags kept inside cell content (PubTabNet's cells have them), never attributes.
INLINE_TAGS = frozenset({"b", "i", "sup", "sub", "br"})

# Markup that is never content, with the text that ends it.


class Cell(Frozen):
    """One cell of the grid. Rows and columns count from 0."""

    row: int = Field(ge=0, description="first row the cell covers")
    col: int = Field(ge=0, description="first column the cell covers")
    rowspan: int = Field(default=1, ge=1, description="number of rows covered")
    colspan: int = Field(default=1, ge=1, description="number of columns covered")
    text: str = Field(
        default="", description="plain text: markup removed, whitespace runs made one space"
    )
    content: str = Field(
        default="",
        description="the cell as HTML: escaped text with its whitespace, and only the inline "
        "tags b, i, sup, sub and br, without attributes",
    )
    is_header: bool = Field(default=False, description="in the header rows or a <th>")
    tag: Literal["td", "th"] = Field(default="td", description="the element written: td or th")
    box: Box | None = Field(default=None, description="cell box when the model wrote coords")
    confidence: float | None = Field(
        default=None,
        description="geometric mean probability of the tokens that wrote the cell, tags "
        "included (0-1); None when the engine gave no log-probabilities",
    )


class Table(Frozen):
    """A rectangular table grid read from model output."""

    cells: tuple[Cell, ...] = Field(description="cells in row-major order")
    shape: tuple[int, int] = Field(description="(rows, columns) of the grid")
    header_rows: int = Field(default=0, ge=0, description="leading rows that form the header")
    repairs: tuple[str, ...] = Field(
        default=(), description="what was fixed in the model output (e.g. a cut-off row)"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def html(self) -> str:
        """Safe HTML rebuilt from the grid: escaped text, only span attributes."""
        return _to_html(self)

    def grid(self) -> list[list[str]]:
        """Text of every grid position; a spanning cell's text fills its top-left slot only."""
        rows, cols = self.shape
        out = [[""] * cols for _ in range(rows)]
        for cell in self.cells:
            out[cell.row][cell.col] = cell.text
        return out

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown; the first row is the header line."""
        rows = self.grid()
        if not rows:
            return ""

        def line(values: list[str]) -> str:
            cells = (v.replace("|", "\\|").replace("\n", " ") for v in values)
            return "| " + " | ".join(cells) + " |"

        body = [line(rows[0]), "|" + "---|" * self.shape[1]]
        body += [line(r) for r in rows[1:]]
        return "\n".join(body) + "\n"

    def to_csv(self) -> str:
        """CSV text of the grid (RFC 4180 quoting)."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(self.grid())
        return buffer.getvalue()

    def to_pandas(self) -> pandas.DataFrame:
        """The grid as a DataFrame; header rows become the column labels."""
        try:
            import pandas
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas needs pandas: pip install pandas") from error
        rows = self.grid()
        n = max(1, self.header_rows) if rows else 0
        if n == 0:
            return pandas.DataFrame()
        if n == 1:
            columns: list[str] | pandas.MultiIndex = rows[0]
        else:
            columns = pandas.MultiIndex.from_arrays(rows[:n])
        return pandas.DataFrame(rows[n:], columns=columns)


def span_attributes(cell: Cell) -> str:
    """`` rowspan="n"`` / `` colspan="n"`` for the spans over 1 (none for a plain cell)."""
    return "".join(
        f' {name}="{value}"'
        for name, value in (("rowspan", cell.rowspan), ("colspan", cell.colspan))
        if value > 1
    )


def sections_html(table: Table, cell_html: Callable[[Cell], str]) -> str:
    """``<thead>``/``<tbody>`` with one ``<tr>`` per grid row, each cell written by
    ``cell_html`` (the rebuilt ``html`` and fine-tuning targets differ only there)."""
    by_row: dict[int, list[Cell]] = {}
    for cell in table.cells:
        by_row.setdefault(cell.row, []).append(cell)
    parts: list[str] = []
    for section, rows in (
        ("thead", range(table.header_rows)),
        ("tbody", range(table.header_rows, table.shape[0])),
    ):
        if not rows:
            continue
        parts.append(f"<{section}>")
        for r in rows:
            cells = sorted(by_row.get(r, []), key=lambda c: c.col)
            parts.extend(["<tr>", *map(cell_html, cells), "</tr>"])
        parts.append(f"</{section}>")
    return "".join(parts)


_INLINE_TAG = re.compile(r"</?(?:{})>".format("|".join(sorted(INLINE_TAGS))))


def safe_content(content: str) -> str:
    """``content`` as it may be written into HTML: the inline tags exactly as the parser
    writes them (``<b>``, ``</sup>``: no attributes) kept, everything else escaped.

    The parser's own content comes back unchanged (its text is already escaped, so it is
    unescaped before escaping again); a ``Cell`` built by hand cannot carry markup, so
    ``Table.html`` is safe whoever made the table.
    """
    parts: list[str] = []
    last = 0
    for tag in _INLINE_TAG.finditer(content):
        parts.append(html.escape(html.unescape(content[last : tag.start()]), quote=False))
        parts.append(tag.group())
        last = tag.end()
    parts.append(html.escape(html.unescape(content[last:]), quote=False))
    return "".join(parts)


def _to_html(table: Table) -> str:
    def cell_html(cell: Cell) -> str:
        return f"<{cell.tag}{span_attributes(cell)}>{safe_content(cell.content)}</{cell.tag}>"

    return f"<table>{sections_html(table, cell_html)}</table>"
