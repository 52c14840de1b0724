"""hOCR 1.2 per page: XHTML whose elements carry their box in the ``title`` attribute.

Each page is one XHTML document (OCRmyPDF, hocr-tools and most viewers take a file per
page): an ``ocr_page`` with the image's size, then the reading-order blocks. A text block
is an ``ocr_carea`` holding one ``ocr_par`` of ``ocr_line`` elements; a table is an
``ocr_table`` whose cells are lines. The record has line boxes, not word boxes, so each
line holds exactly one ``ocrx_word`` with the line's text and box: tools that render words
(OCRmyPDF's hOCR renderer) find them, and no word box is invented. A molecule is an
``ocr_chem`` holding its SMILES, music and figures are ``ocr_image`` areas without text,
and answers to questions (not on the page) are left out. ``x_wconf`` is the confidence of
the model output the line came from, in percent.
"""

from __future__ import annotations

from lxml import etree
from lxml.builder import ElementMaker

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

__all__ = ["XHTML", "page_hocr"]

XHTML = "http://www.w3.org/1999/xhtml"
_DOCTYPE = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">'
)
_CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocr_table ocr_chem ocr_image"
_E = ElementMaker(namespace=XHTML, nsmap={None: XHTML})


def _bbox(box: Box, size: tuple[int, int]) -> str:
    return "bbox {} {} {} {}".format(*pixels(box, size))


def _line(line: Line, ids: Ids, confidence: float | None, size: tuple[int, int]) -> etree._Element:
    word_title = _bbox(line.box, size)
    if confidence is not None:
        word_title += f"; x_wconf {round(confidence * 100)}"
    word = _E.span(
        clean_text(line.text), {"class": "ocrx_word", "id": ids("word"), "title": word_title}
    )
    return _E.span(word, {"class": "ocr_line", "id": ids("line"), "title": _bbox(line.box, size)})


def _block(block: Block, ids: Ids, size: tuple[int, int]) -> etree._Element | None:
    title = _bbox(block.box, size)
    if block.kind in TEXT_KINDS:
        if not block.lines:
            return None
        confidence = block.result.confidence
        paragraph = _E.p(
            {"class": "ocr_par", "id": ids("par"), "title": title},
            *(_line(line, ids, confidence, size) for line in block.lines),
        )
        kind = "ocr_table" if block.kind == "table" else "ocr_carea"
        return _E.div({"class": kind, "id": ids("block"), "title": title}, paragraph)
    if block.kind == "molecule":
        return _E.div(
            clean_text(block.text), {"class": "ocr_chem", "id": ids("block"), "title": title}
        )
    if block.kind in ("music", "caption"):
        return _E.div({"class": "ocr_image", "id": ids("block"), "title": title})
    return None  # an answer is about the page, not on it


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def page_hocr(page: Page, source: str) -> str:
    """The hOCR document of one page of ``source`` (XHTML, UTF-8, with its declaration)."""
    ids = Ids(page.number)
    size = (page.width, page.height)
    whole = Box(x0=0, y0=0, x1=page.width, y1=page.height)
    title = f"image {_quoted(clean_text(source))}; {_bbox(whole, size)}; ppageno {page.number - 1}"
    body = _E.div({"class": "ocr_page", "id": f"page_{page.number}", "title": title})
    for block in reading_order(page):
        element = _block(block, ids, size)
        if element is not None:
            body.append(element)
    if page.rotation or page.skew:  # how each line lies on the scan, counter-clockwise
        angle = f"textangle {(page.rotation + page.skew) % 360:g}"
        for line in body.iter(f"{{{XHTML}}}span"):
            if line.get("class") == "ocr_line":
                line.set("title", f"{line.get('title')}; {angle}")
    head = _E.head(
        _E.title(clean_text(f"{source}, page {page.number}")),
        _E.meta({"http-equiv": "Content-Type", "content": "text/html;charset=utf-8"}),
        _E.meta({"name": "ocr-system", "content": f"{SOFTWARE} {software_version()}"}),
        _E.meta({"name": "ocr-capabilities", "content": _CAPABILITIES}),
        _E.meta({"name": "ocr-number-of-pages", "content": "1"}),
    )
    html = _E.html(head, _E.body(body))
    text: bytes = etree.tostring(
        html, xml_declaration=True, encoding="UTF-8", doctype=_DOCTYPE, pretty_print=True
    )
    return text.decode("utf-8")
