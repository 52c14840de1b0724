"""Tables drawn from their HTML with PIL: synthetic table images with exact targets.

No browser is needed (none is at hand offline, and a browser would make the pixels depend
on its version): the HTML is read into a grid by ``parsers.parse_table`` and drawn cell
by cell with PIL, in a system TrueType font when one is installed (DejaVu, Liberation) or
Pillow's own, with varied font size, padding, alignment and rules (full grid, booktabs
rules, none). Each cell's inline markup is drawn as it says (bold, italic, raised and
lowered small text, line breaks) and kept in the target, so a synthetic table teaches the
same target as the PubTabNet annotation it came from. Because the drawing places every
cell, the target can carry each cell's text box as ``coords`` location tokens, exact
rather than estimated.
"""

from __future__ import annotations

import functools
import html
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from docvlm.errors import InputError
from parsers import Box, Cell, Table, TableParseError, box_to_tokens, parse_table
from parsers.table import sections_html, span_attributes

__all__ = ["random_table_html", "render_table", "table_target"]

_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/truetype/liberation"),
)
#: Regular, bold, italic, bold italic of one family.
_FONT_FAMILIES = (
    (
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
        "DejaVuSans-Oblique.ttf",
        "DejaVuSans-BoldOblique.ttf",
    ),
    (
        "DejaVuSerif.ttf",
        "DejaVuSerif-Bold.ttf",
        "DejaVuSerif-Italic.ttf",
        "DejaVuSerif-BoldItalic.ttf",
    ),
    (
        "LiberationSans-Regular.ttf",
        "LiberationSans-Bold.ttf",
        "LiberationSans-Italic.ttf",
        "LiberationSans-BoldItalic.ttf",
    ),
    (
        "LiberationSerif-Regular.ttf",
        "LiberationSerif-Bold.ttf",
        "LiberationSerif-Italic.ttf",
        "LiberationSerif-BoldItalic.ttf",
    ),
)
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_TAG = re.compile(r"<(/?)(b|i|sup|sub|br)\s*/?>")


@dataclass(frozen=True)
class _Style:
    size: int
    pad_x: int
    pad_y: int
    rules: str  # grid, booktabs or none
    align: str  # left or center
    family: tuple[Path, ...]  # regular, bold, italic, bold italic; empty: Pillow's font

    @property
    def line_height(self) -> int:
        return round(self.size * 1.5)  # room for raised and lowered text

    def font(self, run: _Run) -> Font:
        size = round(self.size * 0.7) if run.shift else self.size
        if not self.family:
            return ImageFont.load_default(size)
        return _truetype(self.family[run.bold + 2 * run.italic], size)


@dataclass(frozen=True)
class _Run:
    """Text in one style: bold, italic, raised (shift 1, sup) or lowered (-1, sub)."""

    text: str
    bold: bool = False
    italic: bool = False
    shift: int = 0


@functools.lru_cache(maxsize=256)
def _truetype(path: Path, size: int) -> Font:
    return ImageFont.truetype(str(path), size)


def _families() -> list[tuple[Path, ...]]:
    return [
        tuple(folder / name for name in family)
        for folder in _FONT_DIRS
        for family in _FONT_FAMILIES
        if all((folder / name).is_file() for name in family)
    ]


def _style(rng: random.Random) -> _Style:
    size = rng.randint(12, 22)
    families = _families()
    return _Style(
        size=size,
        pad_x=rng.randint(4, 14),
        pad_y=rng.randint(2, 8),
        rules=rng.choice(["grid", "booktabs", "none"]),
        align=rng.choice(["left", "center"]),
        family=rng.choice(families) if families else (),
    )


def _lines(content: str) -> list[list[_Run]]:
    """A cell's content (escaped text with b, i, sup, sub, br) as lines of styled runs."""
    lines: list[list[_Run]] = [[]]
    open_tags: list[str] = []
    closing = ""
    for index, piece in enumerate(_TAG.split(content)):
        if index % 3 == 1:
            closing = piece
            continue
        if index % 3 == 2:
            if piece == "br":
                lines.append([])
            elif closing:
                if piece in open_tags:
                    del open_tags[len(open_tags) - 1 - open_tags[::-1].index(piece)]
            else:
                open_tags.append(piece)
            continue
        text = re.sub(r"\s+", " ", html.unescape(piece))
        if text:
            shift = 1 if "sup" in open_tags else -1 if "sub" in open_tags else 0
            lines[-1].append(_Run(text, "b" in open_tags, "i" in open_tags, shift))
    for line in lines:  # no ink from the whitespace at either end of a line
        while line and not line[0].text.strip():
            line.pop(0)
        while line and not line[-1].text.strip():
            line.pop()
        if line:
            line[0] = _Run(line[0].text.lstrip(), line[0].bold, line[0].italic, line[0].shift)
            last = line[-1]
            line[-1] = _Run(last.text.rstrip(), last.bold, last.italic, last.shift)
    return lines


def _width(line: list[_Run], style: _Style) -> int:
    return round(sum(style.font(run).getlength(run.text) for run in line))


def _sizes(table: Table, style: _Style) -> tuple[list[int], list[int]]:
    rows, cols = table.shape
    widths, heights = [1] * cols, [1] * rows
    for cell in table.cells:
        lines = _lines(cell.content)
        need_w = max(_width(line, style) for line in lines) + 2 * style.pad_x
        have = sum(widths[cell.col : cell.col + cell.colspan])
        if need_w > have:
            widths[cell.col + cell.colspan - 1] += need_w - have
        need_h = len(lines) * style.line_height + 2 * style.pad_y
        have_h = sum(heights[cell.row : cell.row + cell.rowspan])
        if need_h > have_h:
            heights[cell.row + cell.rowspan - 1] += need_h - have_h
    return widths, heights


def _draw_cell(
    draw: ImageDraw.ImageDraw, cell: Cell, area: tuple[int, int, int, int], style: _Style
) -> Box | None:
    """Draw the cell's runs in ``area`` (x0, y0, x1, y1); the box of the ink, if any."""
    x0, y0, x1, y1 = area
    lines = _lines(cell.content)
    top = (y0 + y1 - len(lines) * style.line_height) // 2
    ink: list[tuple[float, float, float, float]] = []
    for number, line in enumerate(lines):
        width = _width(line, style)
        x = float(x0 + style.pad_x if style.align == "left" else (x0 + x1 - width) // 2)
        baseline = top + number * style.line_height + round(style.size * 1.1)
        for run in line:
            font = style.font(run)
            y = baseline - round(run.shift * style.size * (0.4 if run.shift > 0 else 0.25))
            if run.text.strip():
                draw.text((x, y), run.text, font=font, fill="black", anchor="ls")
                ink.append(draw.textbbox((x, y), run.text, font=font, anchor="ls"))
            x += font.getlength(run.text)
    if not ink:
        return None
    return Box(
        x0=min(b[0] for b in ink),
        y0=min(b[1] for b in ink),
        x1=max(b[2] for b in ink),
        y1=max(b[3] for b in ink),
    )


def render_table(
    markup: str, rng: random.Random, noise: float = 1.0, coords: bool = False
) -> tuple[Image.Image, str]:
    """The table drawn, and its target (with each cell's text box when ``coords``)."""
    from docvlm.finetune.noise import add_scan_noise

    try:
        table = parse_table(markup)
    except TableParseError as error:
        raise InputError(f"not a table ({error.reason})", source=markup[:60]) from error
    style = _style(rng)
    widths, heights = _sizes(table, style)
    margin = rng.randint(4, 24)
    xs = [margin + sum(widths[:i]) for i in range(len(widths) + 1)]
    ys = [margin + sum(heights[:i]) for i in range(len(heights) + 1)]
    image = Image.new("RGB", (xs[-1] + margin, ys[-1] + margin), "white")
    draw = ImageDraw.Draw(image)
    boxes: dict[tuple[int, int], Box] = {}
    for cell in table.cells:
        x0, x1 = xs[cell.col], xs[cell.col + cell.colspan]
        y0, y1 = ys[cell.row], ys[cell.row + cell.rowspan]
        if style.rules == "grid":
            draw.rectangle((x0, y0, x1, y1), outline="black")
        box = _draw_cell(draw, cell, (x0, y0, x1, y1), style)
        if box is not None:
            boxes[(cell.row, cell.col)] = box
    if style.rules == "booktabs":
        for y in (ys[0], ys[table.header_rows] if table.header_rows else None, ys[-1]):
            if y is not None:
                draw.line(
                    (xs[0], y, xs[-1], y),
                    fill="black",
                    width=2 if y != ys[table.header_rows] else 1,
                )
    side = max(image.size)
    return add_scan_noise(image, rng, noise), table_target(table, boxes if coords else {}, side)


def table_target(table: Table, boxes: dict[tuple[int, int], Box], side: float) -> str:
    """PubTabNet-style HTML of a grid (``<thead>``/``<tbody>``, spans, each cell's escaped
    text with its inline markup), with ``coords`` for the cells in ``boxes`` (pixel boxes
    in a square of ``side`` px)."""

    def cell_html(cell: Cell) -> str:
        box = boxes.get((cell.row, cell.col))
        coords = "" if box is None else f' coords="{box_to_tokens(box, side, side)}"'
        return f"<td{span_attributes(cell)}{coords}>{cell.content}</td>"

    return sections_html(table, cell_html)


def random_table_html(rng: random.Random) -> str:
    """A random table: a bold header row (sometimes a spanning group header) and numeric
    rows."""
    cols, rows = rng.randint(2, 6), rng.randint(2, 8)
    words = ["Total", "Mean", "Group", "Age", "Dose", "Value", "Ratio", "Case", "n", "SD", "P"]
    head = [
        rng.choice(words) + (f" {rng.randint(1, 9)}" if rng.random() < 0.3 else "")
        for _ in range(cols)
    ]
    lines = ["<thead>"]
    if cols >= 3 and rng.random() < 0.3:
        lines.append(f'<tr><td></td><td colspan="{cols - 1}"><b>{rng.choice(words)}</b></td></tr>')
    lines.append("<tr>" + "".join(f"<td><b>{h}</b></td>" for h in head) + "</tr></thead><tbody>")
    for _ in range(rows):
        label = "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(2, 8)))
        values = [
            f"{rng.uniform(0, 1000):.{rng.randint(0, 3)}f}" if rng.random() > 0.1 else ""
            for _ in range(cols - 1)
        ]
        lines.append("<tr>" + "".join(f"<td>{v}</td>" for v in [label, *values]) + "</tr>")
    lines.append("</tbody>")
    return "".join(lines)
