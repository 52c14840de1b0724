"""The invisible text layer of a searchable PDF, drawn with fpdf2.

Each line of a page, in the shared reading order, is written in text render mode 3
(invisible) with Occulta, a glyphless font that maps every Unicode BMP code point (as
Tesseract's GlyphLessFont does), so text in any script is found by search and copied by a
viewer. The font's em box is 800 units above the baseline and 200 below, so a font size
equal to the line box's height puts the em box on the line box; the text is then scaled
horizontally (``Tz``) to span the box's width, so the selection a viewer draws and the
word boxes ``pdftotext -bbox`` reports fall on the words of the scan.

What is searched: the lines of text results, table cells (row by row), molecules as their
SMILES. Captions and answers are not written: they describe the page, they are not on it.
Music has no text to search.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from docvlm.errors import MissingDependencyError
from docvlm.formats.order import reading_order
from docvlm.results import Page
from parsers import Box

if TYPE_CHECKING:
    from fpdf import FPDF

__all__ = ["FONT", "PlacedLine", "draw_page", "new_layer", "searchable_lines"]

#: The glyphless font (OCRmyPDF's Occulta, Apache-2.0; see fonts/README.md).
FONT = Path(__file__).with_name("fonts") / "Occulta.ttf"
_FONT_NAME = "Occulta"
#: Occulta's descent, as a share of the em (ascent 0.8 + descent 0.2 = 1 em).
_DESCENT = 0.2
#: The least horizontal scaling of a line (see ``_write``).
_MIN_STRETCH = 0.3
#: Blocks whose lines are searchable text on the page.
_SEARCHABLE = frozenset({"text", "table", "molecule"})


@dataclass(frozen=True)
class PlacedLine:
    """A line to write: its text, its box in page pixels, whether the box was estimated."""

    text: str
    box: Box
    estimated: bool


def searchable_lines(page: Page) -> list[PlacedLine]:
    """The page's searchable lines in reading order (see the module docstring)."""
    return [
        PlacedLine(line.text, line.box, line.estimated)
        for block in reading_order(page)
        if block.kind in _SEARCHABLE
        for line in block.lines
        if line.text.strip() and line.box.width > 0 and line.box.height > 0
    ]


def new_layer() -> FPDF:
    """An empty fpdf2 document in points, with the glyphless font, writing invisible text."""
    try:
        from fpdf import FPDF
        from fpdf.enums import TextMode
    except ImportError as error:
        raise MissingDependencyError(
            "searchable PDFs need fpdf2 and pikepdf: pip install 'docvlm[pdf]'"
        ) from error
    pdf = FPDF(unit="pt")
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    pdf.add_font(_FONT_NAME, fname=str(FONT))
    pdf.text_mode = TextMode.INVISIBLE
    pdf.set_creator("docvlm")
    return pdf


def draw_page(pdf: FPDF, page: Page, width: float, height: float) -> int:
    """Write ``page``'s lines on the current fpdf2 page of ``width`` x ``height`` points.

    Page pixels (``page.width`` x ``page.height``, top-left origin) are scaled to the PDF
    page; fpdf2 takes top-left coordinates too and turns them into PDF space. Returns how
    many lines were written.
    """
    if not page.width or not page.height:
        return 0
    sx, sy = width / page.width, height / page.height
    lines = searchable_lines(page)
    measured = [ln.box.height * sy for ln in lines if not ln.estimated]
    # A box estimated from a whole block (a molecule, a table slot, a caption) is not a
    # line's height: cap the size at a typical line so one word does not fill a figure.
    cap = statistics.median(measured) if measured else 0.02 * height
    if page.rotation or page.skew:
        for line in lines:
            _write_turned(pdf, page, line, sx, sy)
        return len(lines)
    for line in lines:
        x0, x1 = line.box.x0 * sx, line.box.x1 * sx
        y0, y1 = line.box.y0 * sy, line.box.y1 * sy
        size = y1 - y0
        if line.estimated and size > cap:
            middle = (y0 + y1) / 2
            y0, y1, size = middle - cap / 2, middle + cap / 2, cap
        _write(pdf, line.text, x0, y0, x1 - x0, size)
    return len(lines)


def _write_turned(pdf: FPDF, page: Page, line: PlacedLine, sx: float, sy: float) -> None:
    """A line of a page read turned or straightened: written along the line as it lies on
    the scan (its outline, ``Page.outline``), so the text follows the slope of the lines."""
    corners = [(x * sx, y * sy) for x, y in page.outline(line.box)]
    (x0, y0), (x1, y1), _, (x3, y3) = corners
    length, height = math.hypot(x1 - x0, y1 - y0), math.hypot(x3 - x0, y3 - y0)
    if length <= 0 or height <= 0:
        return
    angle = math.degrees(math.atan2(y0 - y1, x1 - x0))  # counter-clockwise, as fpdf2 turns
    with pdf.rotation(angle, x0, y0):
        _write(pdf, line.text, x0, y0, length, height)


def _write(pdf: FPDF, text: str, x: float, top: float, width: float, height: float) -> None:
    """``text`` spanning the box at (x, top) of ``width`` x ``height`` points.

    The font size is the box's height unless the text would be squeezed under
    ``_MIN_STRETCH``: then it is smaller, its em box centred in the line box. (Squeezed
    harder, the same letter twice in a row lands within a tenth of the font size of the
    first, and pdftotext drops it as a fake-bold duplicate: "tool" would read "to l".)
    """
    pdf.set_stretching(100)
    pdf.set_font(_FONT_NAME, size=1)
    em = pdf.get_string_width(text)  # the width at one point and no scaling
    size = min(height, width / (em * _MIN_STRETCH)) if em > 0 else height
    size = max(size, 0.5)
    pdf.set_font(_FONT_NAME, size=size)
    if em > 0:
        pdf.set_stretching(100 * width / (em * size))
    pdf.text(x, top + (height + size) / 2 - _DESCENT * size, text)
