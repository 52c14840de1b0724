"""OCR output: plain lines, or words and lines each led by a ``<loc>`` box."""

from __future__ import annotations

import re

from pydantic import Field

from parsers.base import Box, Frozen, check_size
from parsers.locations import BINS, box_from_bins

__all__ = ["TextLine", "TextLines", "parse_text"]

_BOX = re.compile(r"<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})>")
_STRAY = re.compile(r"<(?:loc\d{4}|seg\d{3})>")
# Items end at a line break, or at a ';' that a location token follows: the model writes
# ``<loc..>x4 text ; <loc..>x4 text``, and a ';' inside a line of text is text.
_BREAK = re.compile(r"\n|;\s*(?=<loc\d{4}>)")


class TextLine(Frozen):
    """One line (or word) of text, with its box when the model wrote one."""

    text: str = Field(description="the text, stripped of location tokens")
    box: Box | None = Field(default=None, description="box in pixels, if the model gave one")


class TextLines(Frozen):
    """The lines an OCR prompt produced, in the order the model wrote them."""

    lines: tuple[TextLine, ...] = Field(description="lines in model order")

    @property
    def text(self) -> str:
        """All lines joined by newlines."""
        return "\n".join(line.text for line in self.lines)


def parse_text(text: str, width: float = BINS, height: float = BINS) -> TextLines:
    """Split OCR output into lines.

    With location tokens, each box starts a new item that runs to the next box or line
    break; the model separates items by `` ; ``, so a ``;`` followed by a location token is
    a separator, and any other ``;`` is text ("Total: 3; see note" stays one line). Boxes
    are scaled to ``width`` x ``height`` pixels (by default left in bins, 0-1024). Without
    location tokens, each non-empty line of the text is one item.
    """
    check_size(text)
    if not _BOX.search(text):
        plain = _STRAY.sub("", text)
        return TextLines(
            lines=tuple(TextLine(text=line.strip()) for line in plain.splitlines() if line.strip())
        )
    lines: list[TextLine] = []

    def add(raw: str, box: Box | None) -> None:
        stripped = _STRAY.sub("", raw).strip()
        if stripped:
            lines.append(TextLine(text=stripped, box=box))

    for chunk in _BREAK.split(text):
        boxes = list(_BOX.finditer(chunk))
        add(chunk[: boxes[0].start()] if boxes else chunk, None)
        for index, match in enumerate(boxes):
            end = boxes[index + 1].start() if index + 1 < len(boxes) else len(chunk)
            y0, x0, y1, x1 = (int(match.group(i)) for i in range(1, 5))
            add(chunk[match.end() : end], box_from_bins(y0, x0, y1, x1, width, height))
    return TextLines(lines=tuple(lines))
