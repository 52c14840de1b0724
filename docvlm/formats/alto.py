"""ALTO 4.4 per page: blocks, lines and their text at whole-pixel positions.

``MeasurementUnit`` is ``pixel`` of the rendered page (the record's coordinates, rounded).
Blocks follow the shared reading order: with layout, one block per layout region; without,
one ``TextBlock`` per reading-order block (a column run, a full-width run). Each line is a
``TextLine`` holding one ``String`` with the line's text: the record has line boxes, not
word boxes, and ALTO's ``CONTENT`` keeps spaces, so no word box is invented. ``WC`` is the
confidence of the model output the line came from.

ALTO 4.4 has no table element: a table is a ``ComposedBlock`` of ``TYPE="table"`` with one
``TextBlock`` per non-empty cell (row-major; the grid itself, spans and header flags, is in
the record and in PAGE XML). Molecules, music and figures are ``Illustration`` elements
with ``TYPE`` molecule, music or figure; answers to questions are not on the page and are
left out.
"""

from __future__ import annotations

from lxml import etree

from docvlm.formats.common import (
    SOFTWARE,
    TEXT_KINDS,
    Ids,
    clean_text,
    pixels,
    software_version,
)
from docvlm.formats.order import Block, Line, reading_order
from docvlm.results import Page
from parsers import Box

__all__ = ["ALTO", "ALTO_SCHEMA", "page_alto"]

ALTO = "http://www.loc.gov/standards/alto/ns-v4#"
ALTO_SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_ILLUSTRATIONS = {"molecule": "molecule", "music": "music", "caption": "figure"}


def _element(parent: etree._Element, tag: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{ALTO}}}{tag}", attributes)


def _place(element: etree._Element, box: Box, size: tuple[int, int]) -> None:
    x0, y0, x1, y1 = pixels(box, size)
    element.set("HPOS", str(x0))
    element.set("VPOS", str(y0))
    element.set("WIDTH", str(x1 - x0))
    element.set("HEIGHT", str(y1 - y0))


def _text_block(
    parent: etree._Element,
    box: Box,
    lines: tuple[Line, ...],
    ids: Ids,
    wc: str | None,
    size: tuple[int, int],
) -> None:
    block = _element(parent, "TextBlock", ID=ids("block"))
    _place(block, box, size)
    for line in lines:
        text_line = _element(block, "TextLine", ID=ids("line"))
        _place(text_line, line.box, size)
        string = _element(text_line, "String", ID=ids("string"), CONTENT=clean_text(line.text))
        _place(string, line.box, size)
        if wc is not None:
            string.set("WC", wc)


def _block(space: etree._Element, block: Block, ids: Ids, size: tuple[int, int]) -> None:
    confidence = block.result.confidence
    wc = None if confidence is None else f"{min(1.0, max(0.0, confidence)):.3f}"
    if block.kind == "text" and block.lines:
        _text_block(space, block.box, block.lines, ids, wc, size)
    elif block.kind == "table" and block.lines:
        composed = _element(space, "ComposedBlock", ID=ids("table"), TYPE="table")
        _place(composed, block.box, size)
        for cell in block.lines:
            _text_block(composed, cell.box, (cell,), ids, wc, size)
    elif block.kind in _ILLUSTRATIONS:
        figure = _element(space, "Illustration", ID=ids("figure"))
        figure.set("TYPE", _ILLUSTRATIONS[block.kind])
        _place(figure, block.box, size)
    # text or table blocks without lines (a failed read) and answers are not written


def page_alto(page: Page, source: str) -> str:
    """The ALTO 4.4 document of one page of ``source`` (UTF-8, with its declaration)."""
    root = etree.Element(f"{{{ALTO}}}alto", nsmap={None: ALTO, "xsi": _XSI})
    root.set(f"{{{_XSI}}}schemaLocation", f"{ALTO} {ALTO_SCHEMA}")
    description = _element(root, "Description")
    _element(description, "MeasurementUnit").text = "pixel"
    image = _element(description, "sourceImageInformation")
    _element(image, "fileName").text = clean_text(source)
    step = _element(description, "Processing", ID="processing_1")
    software = _element(step, "processingSoftware")
    _element(software, "softwareName").text = SOFTWARE
    _element(software, "softwareVersion").text = software_version()
    layout = _element(root, "Layout")
    alto_page = _element(
        layout,
        "Page",
        ID=f"page_{page.number}",
        PHYSICAL_IMG_NR=str(page.number),
        WIDTH=str(page.width),
        HEIGHT=str(page.height),
    )
    if page.rotation or page.skew:  # how the text lies on the scan, counter-clockwise
        alto_page.set("ROTATION", f"{(page.rotation + page.skew) % 360:g}")
    space = _element(alto_page, "PrintSpace")
    size = (page.width, page.height)
    _place(space, Box(x0=0, y0=0, x1=page.width, y1=page.height), size)
    ids = Ids(page.number)
    for block in reading_order(page):
        if block.kind in TEXT_KINDS or block.kind in _ILLUSTRATIONS:
            _block(space, block, ids, size)
    text: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return text.decode("utf-8")
