"""OCR output: plain lines, or words and lines each led by a ``<loc>`` box."""

from __future__ import annotations

import re

from pydantic import Field

from parsers.base import Box, Frozen, SpanScore, check_size
from parsers.locations import BINS, box_from_bins

__all__ = ["TextLine", "TextLines", "parse_text"]

_BOX = re.compile(r"<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})>")
_STRAY = re.compile(r"<(?:loc\d{4}|seg\d{3})>")
_SEPARATED = re.compile(r"[^;\n]*")  # the parts of an item, between ; and newlines


class TextLine(Frozen):
    """One line (or word) of text, with its box when the model wrote one."""

    text: str = Field(description="the text, stripped of location tokens")
    box: Box | None = Field(default=None, description="box in pixels, if the model gave one")
    confidence: float | None = Field(
        default=None,
        description="geometric mean probability of the tokens that wrote the line, box "
        "included (0-1); None when the engine gave no log-probabilities",
    )


class TextLines(Frozen):
    """The lines an OCR prompt produced, in the order the model wrote them."""

    lines: tuple[TextLine, ...] = Field(description="lines in model order")

    @property
    def text(self) -> str:
        """All lines joined by newlines."""
        return "\n".join(line.text for line in self.lines)


def parse_text(
    text: str, width: float = BINS, height: float = BINS, score: SpanScore | None = None
) -> TextLines:
    """Split OCR output into lines.

    With location tokens, each box starts a new item that runs to the next box (a ``;``
    or newline also ends it); boxes are scaled to ``width`` x ``height`` pixels (by default
    left in bins, 0-1024). Without them, each non-empty line of the text is one item.
    With ``score``, each item's ``confidence`` is ``score(start, end)`` of the characters
    that wrote it: its box tokens and its text, not the separator after it.
    """
    check_size(text)

    def line(start: int, end: int, body: str, box: Box | None = None) -> TextLine:
        confidence = score(start, end) if score else None
        return TextLine(text=body, box=box, confidence=confidence)

    boxes = list(_BOX.finditer(text))
    lines = []
    if not boxes:
        offset = 0
        for piece in text.splitlines(keepends=True):
            body = _STRAY.sub("", piece).strip()
            if body:
                lines.append(line(offset, offset + len(piece.rstrip("\r\n")), body))
            offset += len(piece)
        return TextLines(lines=tuple(lines))
    leading = _STRAY.sub("", text[: boxes[0].start()]).strip(" ;\n")
    if leading:
        lines.append(line(0, boxes[0].start(), leading))
    for index, match in enumerate(boxes):
        end = boxes[index + 1].start() if index + 1 < len(boxes) else len(text)
        y0, x0, y1, x1 = (int(match.group(i)) for i in range(1, 5))
        box = box_from_bins(y0, x0, y1, x1, width, height)
        for number, part in enumerate(_SEPARATED.finditer(text, match.end(), end)):
            body = _STRAY.sub("", part.group()).strip()
            if number == 0 and body:  # the box belongs to the first part
                lines.append(line(match.start(), part.end(), body, box))
            elif number and body:
                lines.append(line(part.start(), part.end(), body))
    return TextLines(lines=tuple(lines))
