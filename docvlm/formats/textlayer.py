"""The invisible text layer of a searchable PDF, drawn with fpdf2.

Each line of a page, in the shared reading order, is written in text render mode 3
(invisible) with Occulta, a glyphless font that maps every Unicode BMP code point (as
Tesseract's GlyphLessFont does), so text in any script is found by search and copied by a
viewer. Characters beyond the BMP (emoji, mathematical alphanumerics, rare CJK) are added
to a copy of the font for the document that uses them, so they are kept too. The font's
em box is 800 units above the baseline and 200 below, so a font size equal to the line
box's height puts the em box on the line box; the text is then scaled horizontally
(``Tz``) to span the box's width, so the selection a viewer draws and the word boxes
``pdftotext -bbox`` reports fall on the words of the scan.

A PDF holds glyphs where they are shown, so a line with right-to-left text is written in
display order (the Unicode Bidirectional Algorithm, paired brackets mirrored); readers
(pdfium, poppler) undo that and give back the text in reading order. Characters XML
cannot hold become U+FFFD, as in the XML formats (``docvlm.formats.common.xml_text``).

What is searched: the lines of text results, table cells (row by row), molecules as their
SMILES. Captions and answers are not written: they describe the page, they are not on it.
Music has no text to search.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import unicodedata
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from docvlm.errors import MissingDependencyError
from docvlm.formats.common import xml_text
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
_MIN_STRETCH = 0.5
#: Blocks whose lines are searchable text on the page.
_SEARCHABLE = frozenset({"text", "table", "molecule"})
#: Bidi classes that make a line need reordering into display order.
_RIGHT_TO_LEFT = frozenset({"R", "AL", "AN", "RLE", "RLO", "RLI"})
#: Paired brackets as a right-to-left run shows them (Unicode BidiMirroring, rule L4).
_MIRRORED = str.maketrans("()<>[]{}«»‹›⁅⁆⁽⁾₍₎", ")(><][}{»«›‹⁆⁅⁾⁽₎₍")


@dataclass(frozen=True)
class PlacedLine:
    """A line to write: its text, its box in page pixels, whether the box was estimated."""

    text: str
    box: Box
    estimated: bool


def searchable_lines(page: Page) -> list[PlacedLine]:
    """The page's searchable lines in reading order (see the module docstring), with the
    characters XML cannot hold replaced as the XML formats do."""
    return [
        PlacedLine(xml_text(line.text), line.box, line.estimated)
        for block in reading_order(page)
        if block.kind in _SEARCHABLE
        for line in block.lines
        if line.text.strip()
    ]


def new_layer(pages: Iterable[Page]) -> FPDF:
    """An empty fpdf2 document in points, with the glyphless font, writing invisible text.

    ``pages`` are the pages it will hold: a character of theirs beyond the BMP is added to
    the font (Occulta maps the BMP only, and fpdf2 would drop the rest without a word).
    """
    try:
        from fpdf import FPDF
        from fpdf.enums import TextMode
    except ImportError as error:
        raise MissingDependencyError(
            "searchable PDFs need fpdf2 and pikepdf: pip install 'docvlm[pdf]'"
        ) from error
    astral = {c for page in pages for ln in searchable_lines(page) for c in ln.text if c > "\uffff"}
    pdf = FPDF(unit="pt")
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    pdf.add_font(_FONT_NAME, fname=str(_font_for(pdf, astral) if astral else FONT))
    pdf.text_mode = TextMode.INVISIBLE
    pdf.set_creator("docvlm")
    return pdf


def _font_for(pdf: FPDF, astral: set[str]) -> Path:
    """A copy of Occulta that also maps ``astral``: marks to its empty glyph, ideographs
    to its full-em one, the rest (emoji too) to its half-em one. It lives in a folder
    removed with ``pdf`` (fpdf2 reads it lazily).

    (A full-em emoji after one-letter words, as in "x = 2 😀", makes pdftotext drop the
    line's spaces; a half-em one does not.)"""
    from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

    font = TTFont(FONT)
    for table in font["cmap"].tables:
        for char in astral:
            kind = unicodedata.category(char)
            wide = kind == "Lo" and unicodedata.east_asian_width(char) in ("W", "F")
            mark = kind in ("Mn", "Mc", "Me")
            table.cmap[ord(char)] = "blank0" if mark else "blank2" if wide else "blank1"
    folder = tempfile.TemporaryDirectory(prefix="docvlm-font-", ignore_cleanup_errors=True)
    weakref.finalize(pdf, folder.cleanup)
    path = Path(folder.name) / "Occulta.ttf"
    font.save(path)
    return path


def draw_page(pdf: FPDF, page: Page, width: float, height: float) -> int:
    """Write ``page``'s lines on the current fpdf2 page of ``width`` x ``height`` points.

    Page pixels (``page.width`` x ``page.height``, top-left origin) are scaled to the PDF
    page; fpdf2 takes top-left coordinates too and turns them into PDF space. A box that
    reaches past the page is clamped into it; one cut to nothing at the page's edge (no
    height or no width) gets a typical line's height and the text's own width there.
    Returns how many lines were written.
    """
    if not page.width or not page.height:
        return 0
    sx, sy = width / page.width, height / page.height
    lines = searchable_lines(page)
    measured = [ln.box.height * sy for ln in lines if not ln.estimated and ln.box.height >= 1]
    # A box estimated from a whole block (a molecule, a table slot, a caption) is not a
    # line's height: cap the size at a typical line so one word does not fill a figure.
    cap = statistics.median(measured) if measured else 0.02 * height
    if page.rotation or page.skew:
        for line in lines:
            _write_turned(pdf, page, line, sx, sy)
        return len(lines)
    for line in lines:
        box = line.box
        y0, y1 = _within(box.y0 * sy, box.y1 * sy, cap if box.height < 1 else 0, height)
        size = y1 - y0
        if line.estimated and size > cap:
            middle = (y0 + y1) / 2
            y0, y1, size = middle - cap / 2, middle + cap / 2, cap
        least = _natural_width(pdf, line.text, size) if box.width < 1 else 0
        x0, x1 = _within(box.x0 * sx, box.x1 * sx, least, width)
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


def _within(start: float, end: float, least: float, limit: float) -> tuple[float, float]:
    """The span ``start``..``end`` clamped to 0..``limit``, made at least ``least`` long
    about its middle and kept inside."""
    start, end = min(max(start, 0.0), limit), max(min(end, limit), 0.0)
    least = min(least, limit)
    if end - start < least:
        start = min(max((start + end - least) / 2, 0.0), limit - least)
        end = start + least
    return start, end


def _natural_width(pdf: FPDF, text: str, size: float) -> float:
    pdf.set_stretching(100)
    pdf.set_font(_FONT_NAME, size=1)
    return float(pdf.get_string_width(text)) * size


def _display_order(text: str) -> str:
    """``text`` as it is shown: the runs of a line with right-to-left text reordered by the
    Unicode Bidirectional Algorithm and brackets in right-to-left runs mirrored, as a PDF
    holds glyphs (readers reorder back to reading order)."""
    if not any(unicodedata.bidirectional(c) in _RIGHT_TO_LEFT for c in text):
        return text
    from fpdf.bidi import BidiParagraph

    shown = BidiParagraph(text).get_reordered_characters()
    return "".join(
        c.character.translate(_MIRRORED) if c.embedding_level % 2 else c.character for c in shown
    )


def _write(pdf: FPDF, text: str, x: float, top: float, width: float, height: float) -> None:
    """``text`` spanning the box at (x, top) of ``width`` x ``height`` points.

    The font size is the box's height unless the text would be squeezed under
    ``_MIN_STRETCH``: then it is smaller, its em box centred in the line box. Squeezed
    harder, a space is under a quarter of the font size: pdftotext (``-raw``) then joins
    the words ("bottom right edge" reads "bottomrightedge"), and from under 0.3 it also
    drops a doubled letter as fake bold ("tool" reads "to l").
    """
    text = _display_order(text)
    em = _natural_width(pdf, text, 1.0)  # the width at one point and no scaling
    size = min(height, width / (em * _MIN_STRETCH)) if em > 0 else height
    size = max(size, 0.5)
    pdf.set_font(_FONT_NAME, size=size)
    if em > 0:
        pdf.set_stretching(100 * width / (em * size))
    pdf.text(x, top + (height + size) / 2 - _DESCENT * size, text)
