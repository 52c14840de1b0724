"""What the XML writers share: integer pixel boxes, the software's name, block roles.

Boxes in the record are float page pixels; hOCR and PAGE count whole pixels, so every
writer rounds the same way (to the nearest pixel, at least one pixel wide and high) and a
reader finds each box within half a pixel of the record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

from docvlm.results import Page
from parsers import Box

__all__ = [
    "SOFTWARE",
    "TEXT_KINDS",
    "Converted",
    "Ids",
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


# characters XML 1.0 cannot hold (C0 controls but tab/newline/return, lone surrogates, FFFE/FFFF)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

SOFTWARE = "docvlm"

#: Blocks whose lines are text printed on the page (written as text lines); molecules,
#: music, figure captions and answers are regions without transcribed text.
TEXT_KINDS = frozenset({"text", "table"})


def pixels(box: Box) -> tuple[int, int, int, int]:
    """``box`` as whole pixels (x0, y0, x1, y1), rounded, never empty nor negative."""
    x0, y0 = max(0, round(box.x0)), max(0, round(box.y0))
    return x0, y0, max(x0 + 1, round(box.x1)), max(y0 + 1, round(box.y1))


def software_version() -> str:
    """docvlm's installed version (``unknown`` in a source tree that was not installed)."""
    try:
        return version("docvlm")
    except PackageNotFoundError:
        return "unknown"


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (a model may write control
    characters through byte tokens); each becomes U+FFFD so the loss is visible."""
    return _NOT_XML.sub("\ufffd", text)


class Ids:
    """Element ids unique in a page's file: ``line_3_12`` is the 12th line of page 3."""

    def __init__(self, page: int) -> None:
        self.page = page
        self.counts: dict[str, int] = {}

    def __call__(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}_{self.page}_{self.counts[kind]}"
