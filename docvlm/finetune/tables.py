"""Tables drawn from their HTML with PIL: synthetic table images with exact targets.

No browser is needed (none is at hand offline, and a browser would make the pixels depend
on its version): the HTML is read into a grid by ``parsers.parse_table`` and drawn cell
by cell with PIL, in a system TrueType font when one is installed (DejaVu, Liberation) or
Pillow's own, with varied font size, padding, alignment and rules (full grid, booktabs
rules, none). Because the drawing places every cell, the target can carry each cell's
text box as ``coords`` location tokens, exact rather than estimated.
"""

from __future__ import annotations

import html
import random
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
_FONT_PAIRS = (
    ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"),
    ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
    ("LiberationSerif-Regular.ttf", "LiberationSerif-Bold.ttf"),
)
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class _Style:
    size: int
    pad_x: int
    pad_y: int
    rules: str  # grid, booktabs or none
    align: str  # left or center
    regular: Font
    bold: Font


def _fonts(rng: random.Random, size: int) -> tuple[Font, Font]:
    pairs = [
        (folder / regular, folder / bold)
        for folder in _FONT_DIRS
        for regular, bold in _FONT_PAIRS
        if (folder / regular).is_file() and (folder / bold).is_file()
    ]
    if not pairs:
        default = ImageFont.load_default(size)
        return default, default
    regular, bold = rng.choice(pairs)
    return ImageFont.truetype(str(regular), size), ImageFont.truetype(str(bold), size)


def _style(rng: random.Random) -> _Style:
    size = rng.randint(12, 22)
    regular, bold = _fonts(rng, size)
    return _Style(
        size=size,
        pad_x=rng.randint(4, 14),
        pad_y=rng.randint(2, 8),
        rules=rng.choice(["grid", "booktabs", "none"]),
        align=rng.choice(["left", "center"]),
        regular=regular,
        bold=bold,
    )


def _extent(font: Font, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text or " ")
    return int(right - left), int(bottom - top)


def _sizes(table: Table, style: _Style) -> tuple[list[int], list[int]]:
    rows, cols = table.shape
    widths, heights = [1] * cols, [1] * rows
    for cell in table.cells:
        font = style.bold if cell.is_header else style.regular
        w, h = _extent(font, cell.text)
        need_w = w + 2 * style.pad_x
        have = sum(widths[cell.col : cell.col + cell.colspan])
        if need_w > have:
            widths[cell.col + cell.colspan - 1] += need_w - have
        need_h = max(h, style.size) + 2 * style.pad_y
        have_h = sum(heights[cell.row : cell.row + cell.rowspan])
        if need_h > have_h:
            heights[cell.row + cell.rowspan - 1] += need_h - have_h
    return widths, heights


def render_table(
    markup: str, rng: random.Random, noise: float = 1.0, coords: bool = False
) -> tuple[Image.Image, str]:
    """The table drawn, and its target (with each cell's text box when ``coords``)."""
    from docvlm.finetune.synthetic import add_scan_noise

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
        if not cell.text:
            continue
        font = style.bold if cell.is_header else style.regular
        w, h = _extent(font, cell.text)
        left = x0 + style.pad_x if style.align == "left" else (x0 + x1 - w) // 2
        top = (y0 + y1 - h) // 2
        offset_x, offset_y = font.getbbox(cell.text)[:2]
        draw.text((left - offset_x, top - offset_y), cell.text, font=font, fill="black")
        boxes[(cell.row, cell.col)] = Box(x0=left, y0=top, x1=left + w, y1=top + h)
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
    """PubTabNet-style HTML of a grid (``<thead>``/``<tbody>``, spans, escaped text), with
    ``coords`` for the cells in ``boxes`` (pixel boxes in a square of ``side`` px)."""

    def cell_html(cell: Cell) -> str:
        box = boxes.get((cell.row, cell.col))
        coords = "" if box is None else f' coords="{box_to_tokens(box, side, side)}"'
        text = html.escape(cell.text, quote=False)
        return f"<td{span_attributes(cell)}{coords}>{text}</td>"

    return sections_html(table, cell_html)


def random_table_html(rng: random.Random) -> str:
    """A random table: a header row (sometimes a spanning group header) and numeric rows."""
    cols, rows = rng.randint(2, 6), rng.randint(2, 8)
    words = ["Total", "Mean", "Group", "Age", "Dose", "Value", "Ratio", "Case", "n", "SD", "P"]
    head = [
        rng.choice(words) + (f" {rng.randint(1, 9)}" if rng.random() < 0.3 else "")
        for _ in range(cols)
    ]
    lines = ["<thead>"]
    if cols >= 3 and rng.random() < 0.3:
        lines.append(f'<tr><td></td><td colspan="{cols - 1}">{rng.choice(words)}</td></tr>')
    lines.append("<tr>" + "".join(f"<td>{h}</td>" for h in head) + "</tr></thead><tbody>")
    for _ in range(rows):
        label = "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(2, 8)))
        values = [
            f"{rng.uniform(0, 1000):.{rng.randint(0, 3)}f}" if rng.random() > 0.1 else ""
            for _ in range(cols - 1)
        ]
        lines.append("<tr>" + "".join(f"<td>{v}</td>" for v in [label, *values]) + "</tr>")
    lines.append("</tbody>")
    return "".join(lines)
