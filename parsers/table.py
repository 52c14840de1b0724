"""Table output (HTML, PubTabNet tokens, PaliGemma 2 ``coords``) to a validated grid.

The model's markup is never passed through: the text is read by a small tokenizer that
knows only table tags, cells are placed on a grid honouring rowspan and colspan, and
``Table.html`` is written anew from that grid with escaped text and span attributes only.
Inside a cell the inline tags of PubTabNet's data (``b``, ``i``, ``sup``, ``sub``, ``br``)
are kept without attributes, and the text keeps its whitespace, so that a PubTabNet table
reads back to the very same HTML. Comments, processing instructions and CDATA are dropped.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import Field, computed_field

from parsers.base import Box, Frozen, TableParseError, check_size
from parsers.locations import BINS, box_from_bins

if TYPE_CHECKING:
    import pandas

__all__ = ["INLINE_TAGS", "MAX_CELLS", "MAX_SPAN", "Cell", "Table", "parse_table"]

#: Largest rowspan/colspan taken as written; larger spans are clamped (and recorded).
MAX_SPAN = 1_000
#: Largest grid (rows x columns) accepted; a bigger one is refused as a hostile input. A
#: 4,096-token output holds at most about 2,000 cells; this bound keeps a call under a second.
MAX_CELLS = 50_000
#: Inline tags kept inside cell content (PubTabNet's cells have them), never attributes.
INLINE_TAGS = frozenset({"b", "i", "sup", "sub", "br"})

_LOC = re.compile(r"<loc(\d{4})>")
_SPAN = re.compile(r"""\b(rowspan|colspan)\s*=\s*["']?\s*(\d{1,9})""", re.IGNORECASE)
_COORDS = re.compile(r"""\bcoords\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_TAG_NAME = re.compile(r"/?\s*([A-Za-z][A-Za-z0-9]*)")
_LOC_TAG = re.compile(r"loc\d{4}")
# Markup that is never content, with the text that ends it.
_NOT_CONTENT = (("<!--", "-->"), ("<![CDATA[", "]]>"), ("<?", "?>"), ("<!", ">"))


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


# --- reading -------------------------------------------------------------------------

Kind = Literal["open", "close", "text"]

# Repairs of one kind are summarised once they repeat, so that a hostile output with
# 100,000 broken cells gives a few lines, not 100,000: key -> summary of n > 1 of them.
_SUMMARIES = {
    "cell": "closed {n:,} cells left open",
    "row": "closed {n:,} rows left open",
    "clamp": "clamped {n:,} spans larger than " + f"{MAX_SPAN:,}" + " (first: {first})",
    "rowspan": "cut {n:,} rowspans at the table's last row (first: {first})",
}


class _Repairs:
    """What was fixed, counted by kind; ``lines()`` lists each once or summarised."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}
        self.count: dict[str, int] = {}

    def add(self, message: str, key: str | None = None) -> None:
        key = key or message
        self.first.setdefault(key, message)
        self.count[key] = self.count.get(key, 0) + 1

    def lines(self) -> tuple[str, ...]:
        return tuple(
            _SUMMARIES[key].format(n=self.count[key], first=first)
            if self.count[key] > 1 and key in _SUMMARIES
            else first
            for key, first in self.first.items()
        )


@dataclass
class _Token:
    kind: Kind
    name: str = ""
    attrs: str = ""
    text: str = ""


def _skip_markup(text: str, start: int, repairs: _Repairs) -> int | None:
    """End of a comment, CDATA section, processing instruction or declaration at start."""
    for opener, closer in _NOT_CONTENT:
        if text.startswith(opener, start):
            end = text.find(closer, start + len(opener))
            if end < 0:
                repairs.add("dropped markup cut off at the end")
                return len(text)
            return end + len(closer)
    return None


def _tokens(text: str, repairs: _Repairs) -> Iterator[_Token]:
    """Tags and text runs; quotes inside a tag are honoured so coords="<loc..>" stays one tag."""
    i, n = 0, len(text)
    while i < n:
        start = text.find("<", i)
        if start < 0:
            yield _Token("text", text=text[i:])
            return
        if start > i:
            yield _Token("text", text=text[i:start])
        skipped = _skip_markup(text, start, repairs)
        if skipped is not None:
            i = skipped
            continue
        j, quote = start + 1, ""
        while j < n:
            ch = text[j]
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch == ">" or ch == "<":
                break
            j += 1
        if j >= n:
            repairs.add("dropped a tag cut off at the end")
            return
        if text[j] == "<":
            yield _Token("text", text=text[start:j])
            i = j
            continue
        body = text[start + 1 : j]
        i = j + 1
        match = _TAG_NAME.match(body)
        if match is None:
            yield _Token("text", text=text[start:i])
            continue
        name = match.group(1).lower()
        kind: Kind = "close" if body.lstrip().startswith("/") else "open"
        yield _Token(kind, name=name, attrs=body[match.end() :])


@dataclass
class _RawCell:
    rowspan: int
    colspan: int
    tag: Literal["td", "th"]
    box_bins: tuple[int, int, int, int] | None
    parts: list[str] = field(default_factory=list)  # escaped text and inline tags
    plain: list[str] = field(default_factory=list)
    inline: list[str] = field(default_factory=list)  # inline tags open now
    open_count: dict[str, int] = field(default_factory=dict)  # of each in `inline`
    locs: list[int] = field(default_factory=list)

    def add_text(self, text: str) -> None:
        value = html.unescape(text)
        self.parts.append(html.escape(value, quote=False))
        self.plain.append(value)

    def open_inline(self, name: str) -> None:
        self.parts.append(f"<{name}>")
        if name == "br":
            self.plain.append(" ")
        else:
            self.inline.append(name)
            self.open_count[name] = self.open_count.get(name, 0) + 1

    def close_inline(self, name: str) -> None:
        if not self.open_count.get(name):
            return  # a closing tag that nothing opened
        while self.inline:
            last = self.inline.pop()
            self.open_count[last] -= 1
            self.parts.append(f"</{last}>")
            if last == name:
                return

    def finish(self) -> tuple[str, str]:
        """(content, plain text), with inline tags left open closed."""
        while self.inline:
            self.parts.append(f"</{self.inline.pop()}>")
        return _content("".join(self.parts)), " ".join("".join(self.plain).split())


def _content(markup: str) -> str:
    # Whitespace is kept as written: PubTabNet has leading spaces and cells of one space
    # (``<td> </td>``), and TEDS counts them. Only a side whose whitespace holds a line
    # break is trimmed: that is pretty-printed HTML's indentation, not the cell's text.
    core = markup.strip()
    lead = markup[: len(markup) - len(markup.lstrip())]
    trail = markup[len(markup.rstrip()) :]
    if not core:
        return "" if "\n" in markup else markup
    return ("" if "\n" in lead else lead) + core + ("" if "\n" in trail else trail)


@dataclass
class _Reader:
    repairs: _Repairs
    rows: list[list[_RawCell]] = field(default_factory=list)
    header_row_flags: list[bool] = field(default_factory=list)
    row: list[_RawCell] | None = None
    cell: _RawCell | None = None
    in_head: bool = False
    skipping: str = ""  # inside <script> or <style>: their text is never cell text

    def open_row(self) -> None:
        if self.row is not None:
            self.close_row("row")
        self.row = []
        self.header_row_flags.append(self.in_head)
        self.rows.append(self.row)

    def close_row(self, repair: str | None = None) -> None:
        if self.cell is not None:
            self.close_cell("cell")
        if self.row is not None and repair:
            self.repairs.add(_REPAIR_TEXT.get(repair, repair), repair)
        self.row = None

    def open_cell(self, name: str, attrs: str) -> None:
        if self.cell is not None:
            self.close_cell("cell")
        if self.row is None:
            self.open_row()
        spans = {"rowspan": 1, "colspan": 1}
        for span_name, value in _SPAN.findall(attrs):
            number = int(value)
            if number > MAX_SPAN:
                self.repairs.add(f"clamped {span_name.lower()}={number} to {MAX_SPAN:,}", "clamp")
            spans[span_name.lower()] = max(1, min(number, MAX_SPAN))
        box = None
        coords = _COORDS.search(attrs)
        if coords:
            bins = [int(v) for v in _LOC.findall(coords.group(1))]
            if len(bins) == 4:
                box = (bins[0], bins[1], bins[2], bins[3])
        tag: Literal["td", "th"] = "th" if name == "th" else "td"
        self.cell = _RawCell(spans["rowspan"], spans["colspan"], tag, box)
        assert self.row is not None
        self.row.append(self.cell)

    def close_cell(self, repair: str | None = None) -> None:
        if self.cell is not None and repair:
            self.repairs.add(_REPAIR_TEXT.get(repair, repair), repair)
        self.cell = None

    def feed(self, token: _Token) -> None:
        if self.skipping:
            if token.kind == "close" and token.name == self.skipping:
                self.skipping = ""
            return
        if token.kind == "text":
            if self.cell is not None:
                self.cell.add_text(token.text)
            return
        name = token.name
        if token.kind == "open":
            self._open(name, token.attrs)
            return
        if name in ("td", "th"):
            self.close_cell()
        elif name == "tr":
            self.close_row()
        elif name == "thead":
            if self.row is not None:
                self.close_row("row")
            self.in_head = False
        elif name in INLINE_TAGS and self.cell is not None:
            self.cell.close_inline(name)

    def _open(self, name: str, attrs: str) -> None:
        if name in ("td", "th"):
            self.open_cell(name, attrs)
        elif name == "tr":
            self.open_row()
        elif name == "thead":
            self.in_head = True
        elif name in ("tbody", "tfoot"):
            self.in_head = False
        elif name in ("script", "style"):
            self.skipping = name
        elif self.cell is None:
            return
        elif name in INLINE_TAGS:
            self.cell.open_inline(name)
        elif _LOC_TAG.fullmatch(name):
            self._loc_in_text(int(name[3:]))

    def _loc_in_text(self, value: int) -> None:
        # Some outputs put the cell box as loc tokens at the start of the cell text.
        assert self.cell is not None
        locs = self.cell.locs
        locs.append(value)
        if len(locs) == 4 and self.cell.box_bins is None:
            self.cell.box_bins = (locs[0], locs[1], locs[2], locs[3])


_REPAIR_TEXT = {"cell": "closed a cell left open", "row": "closed a row left open"}


def parse_table(text: str, width: float = BINS, height: float = BINS) -> Table:
    """Read a table from model output.

    Accepts HTML with or without ``<table>``, PubTabNet structure tokens with the cell text
    written in, and the PaliGemma 2 form with ``coords="<loc..>x4"`` per cell. Cut-off
    output is closed (open cells and rows) and each fix is listed in ``Table.repairs``
    (repeated fixes of one kind as one line with their count). Cell boxes are scaled to
    ``width`` x ``height`` pixels (bins, 0-1024, by default).
    Raises ``TableParseError`` when the text holds no cell at all or the grid is too big.
    """
    check_size(text)
    repairs = _Repairs()
    reader = _Reader(repairs)
    for token in _tokens(text, repairs):
        reader.feed(token)
    if reader.cell is not None:
        reader.close_cell("closed a cell left open at the end")
    if reader.row is not None:
        reader.close_row("closed a row left open at the end")
    if not any(reader.rows):
        raise TableParseError("no table cells in the output", text)
    return _grid(reader.rows, reader.header_row_flags, repairs, width, height, text)


def _grid(
    rows: list[list[_RawCell]],
    header_flags: list[bool],
    repairs: _Repairs,
    width: float,
    height: float,
    raw: str,
) -> Table:
    occupied: set[tuple[int, int]] = set()
    placed: list[tuple[int, int, int, _RawCell]] = []  # row, column, rowspan: row-major
    n_rows = len(rows)
    n_cols = 0
    for r, row in enumerate(rows):
        c = 0
        for raw_cell in row:
            while (r, c) in occupied:
                c += 1
            rowspan = raw_cell.rowspan
            if r + rowspan > n_rows:
                repairs.add(f"cut rowspan={rowspan} at row {r} to the table's last row", "rowspan")
                rowspan = n_rows - r
            # every position lies in rows x columns: bound that before filling any
            n_cols = max(n_cols, c + raw_cell.colspan)
            if n_rows * n_cols > MAX_CELLS:
                raise TableParseError(f"table grid larger than {MAX_CELLS:,} positions", raw)
            for dr in range(rowspan):
                for dc in range(raw_cell.colspan):
                    occupied.add((r + dr, c + dc))
            placed.append((r, c, rowspan, raw_cell))
            c += raw_cell.colspan
    header_rows = _header_rows([(r, rowspan) for r, _, rowspan, _ in placed], header_flags, repairs)
    cells = []
    for r, c, rowspan, raw_cell in placed:
        box = box_from_bins(*raw_cell.box_bins, width, height) if raw_cell.box_bins else None
        content, plain = raw_cell.finish()
        # every value is of its field's type by construction: no validation pass per cell
        cells.append(
            Cell.model_construct(
                row=r,
                col=c,
                rowspan=rowspan,
                colspan=raw_cell.colspan,
                text=plain,
                content=content,
                is_header=r < header_rows or raw_cell.tag == "th",
                tag=raw_cell.tag,
                box=box,
            )
        )
    return Table(
        cells=tuple(cells),
        shape=(n_rows, n_cols),
        header_rows=header_rows,
        repairs=repairs.lines(),
    )


def _header_rows(spans: list[tuple[int, int]], header_flags: list[bool], repairs: _Repairs) -> int:
    """Leading <thead> rows, extended over the rows a header cell's rowspan covers.

    ``spans`` holds (row, rowspan) of every cell in row-major order."""
    header_rows = 0
    for flag in header_flags:
        if not flag:
            break
        header_rows += 1
    written = header_rows
    for row, rowspan in spans:  # row-major, so rows taken in are checked in turn
        if row < header_rows < row + rowspan:
            header_rows = row + rowspan
    if header_rows > written:
        repairs.add(
            f"extended the header from {written} to {header_rows} rows, "
            "which a header cell's rowspan covers"
        )
    return header_rows
