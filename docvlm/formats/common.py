"""What the writers share: the text rule, integer pixel boxes, the software's name, roles.

Text: every export writes what the model read through ``clean_text`` (one rule for ALTO,
PAGE, hOCR, Docling, Markdown, plain text and the tables' CSV and HTML): a control
character other than tab and line feed, a lone surrogate or U+FFFE/U+FFFF becomes U+FFFD.

Boxes in the record are float page pixels; the formats count whole pixels, so every
writer rounds the same way (``pixels``: to the nearest pixel, at least one pixel wide and
high, every pixel on the page) and a reader finds each box within half a pixel of the
record. ALTO (HPOS, WIDTH) and hOCR (``bbox x0 y0 x1 y1``, the page ``bbox 0 0 W H`` as
Tesseract writes it and OCRmyPDF reads it) give the box's edges, so a box ends at most at
the page's width and height; PAGE points are the pixels themselves (0..width-1), so PAGE
writes the last pixel, one less than the edge.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

from docvlm.results import Page
from parsers import Box, Table

__all__ = [
    "SOFTWARE",
    "TEXT_KINDS",
    "Converted",
    "Ids",
    "clean_table",
    "clean_text",
    "pixels",
    "software_version",
    "xml_text",
]


class Converted(Protocol):
    """What a whole-document writer reads of a ``docvlm.Document`` (typed structurally, so
    the writers never import the Document that loads them)."""

    @property
    def source(self) -> str: ...

    @property
    def sha256(self) -> str | None: ...

    @property
    def error(self) -> str | None: ...

    @property
    def pages(self) -> Sequence[Page]: ...


# control characters (Unicode Cc: C0, DEL, C1) but tab and line feed; lone surrogates
# (UTF-8 cannot encode them); FFFE/FFFF (XML 1.0 cannot hold them)
_UNWRITTEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")

SOFTWARE = "docvlm"

#: Blocks whose lines are text printed on the page (written as text lines); molecules,
#: music, figure captions and answers are regions without transcribed text.
TEXT_KINDS = frozenset({"text", "table"})


def pixels(box: Box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` as whole pixels of a page of ``size`` (width, height): edges (x0, y0, x1,
    y1), rounded, never empty, never off the page (0 <= x0 < x1 <= width), so a box cut at
    the page's edge, or squeezed to nothing there, still covers a pixel of the page."""
    width, height = max(1, size[0]), max(1, size[1])
    x0 = min(max(0, round(box.x0)), width - 1)
    y0 = min(max(0, round(box.y0)), height - 1)
    x1 = min(max(x0 + 1, round(box.x1)), width)
    y1 = min(max(y0 + 1, round(box.y1)), height)
    return x0, y0, x1, y1


def software_version() -> str:
    """docvlm's installed version (``unknown`` in a source tree that was not installed)."""
    try:
        return version("docvlm")
    except PackageNotFoundError:
        return "unknown"


def clean_text(text: str) -> str:
    """``text`` as every export writes it: each control character but tab and line feed
    (NUL, carriage return, form feed, escape, DEL, C1...), each lone surrogate and
    U+FFFE/U+FFFF becomes U+FFFD, so the loss is visible and no format differs.

    A model may write control characters through byte tokens. XML 1.0 cannot hold most of
    them, a form feed would split plain text into pages, a carriage return would start a
    Markdown line past its escaping, and UTF-8 cannot encode a lone surrogate."""
    return _UNWRITTEN.sub("\ufffd", text)


#: The name the XML writers used first; the same rule.
xml_text = clean_text


def clean_table(table: Table) -> Table:
    """``table`` with each cell's text and content through ``clean_text`` (for its CSV
    and HTML)."""
    cells = tuple(
        cell.model_copy(update={"text": clean_text(cell.text), "content": clean_text(cell.content)})
        for cell in table.cells
    )
    return table.model_copy(update={"cells": cells})


class Ids:
    """Element ids unique in a page's file: ``line_3_12`` is the 12th line of page 3."""

    def __init__(self, page: int) -> None:
        self.page = page
        self.counts: dict[str, int] = {}

    def __call__(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}_{self.page}_{self.counts[kind]}"
