"""Reading table output (HTML, PubTabNet tokens, PaliGemma 2 ``coords``) into a ``Table``.

A small tokenizer that knows only table tags reads the model's text; cells are placed on a
grid honouring rowspan and colspan, and every repair (a cell left open, a span clamped) is
recorded on the table. The ``Table`` model and its HTML writer live in ``parsers.table``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from parsers.base import TableParseError, check_size
from parsers.locations import BINS, box_from_bins
from parsers.table import INLINE_TAGS, MAX_CELLS, MAX_SPAN, Cell, Table

__all__ = ["parse_table"]

_LOC = re.compile(r"<loc(\d{4})>")
_SPAN = re.compile(r"""\b(rowspan|colspan)\s*=\s*["']?\s*(\d{1,9})""", re.IGNORECASE)
_COORDS = re.compile(r"""\bcoords\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_TAG_NAME = re.compile(r"/?\s*([A-Za-z][A-Za-z0-9]*)")
_LOC_TAG = re.compile(r"loc\d{4}")
_NOT_CONTENT = (("<!--", "-->"), ("<![CDATA[", "]]>"), ("<?", "?>"), ("<!", ">"))


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
    header_rows = _header_rows(header_flags)
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


def _header_rows(header_flags: list[bool]) -> int:
    """The leading rows written inside ``<thead>``.

    The partition is kept as written, even where a header cell's rowspan reaches into the
    body: moving body rows into the header would change the table (its TEDS against its
    own source fell to 0.956)."""
    header_rows = 0
    for flag in header_flags:
        if not flag:
            break
        header_rows += 1
    return header_rows
