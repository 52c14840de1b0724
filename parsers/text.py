"""OCR output: plain lines, or words and lines each led by a ``<loc>`` box."""

from __future__ import annotations

import re

from pydantic import Field

from parsers.base import Box, Frozen, SpanScore, check_size
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

    With location tokens, each box starts a new item that runs to the next box or line
    break; the model separates items by `` ; ``, so a ``;`` followed by a location token is
    a separator, and any other ``;`` is text ("Total: 3; see note" stays one line). Boxes
    are scaled to ``width`` x ``height`` pixels (by default left in bins, 0-1024). Without
    location tokens, each non-empty line of the text is one item. With ``score``, each
    item's ``confidence`` is ``score(start, end)`` of the characters that wrote it: its box
    tokens and its text, not the separator after it.
    """
    check_size(text)
    lines: list[TextLine] = []

    def add(start: int, text_start: int, end: int, box: Box | None = None) -> None:
        stripped = _STRAY.sub("", text[text_start:end]).strip()
        if stripped:
            confidence = score(start, end) if score else None
            lines.append(TextLine(text=stripped, box=box, confidence=confidence))

    if not _BOX.search(text):
        offset = 0
        for piece in text.splitlines(keepends=True):
            end = offset + len(piece.rstrip("\r\n"))
            add(offset, offset, end)
            offset += len(piece)
        return TextLines(lines=tuple(lines))
    for start, end in _chunks(text):
        boxes = list(_BOX.finditer(text, start, end))
        add(start, start, boxes[0].start() if boxes else end)
        for index, match in enumerate(boxes):
            stop = boxes[index + 1].start() if index + 1 < len(boxes) else end
            y0, x0, y1, x1 = (int(match.group(i)) for i in range(1, 5))
            box = box_from_bins(y0, x0, y1, x1, width, height)
            add(match.start(), match.end(), stop, box)  # the box belongs to its item
    return TextLines(lines=tuple(lines))


def _chunks(text: str) -> list[tuple[int, int]]:
    """The spans ``_BREAK.split(text)`` would give."""
    spans, start = [], 0
    for separator in _BREAK.finditer(text):
        spans.append((start, separator.start()))
        start = separator.end()
    spans.append((start, len(text)))
    return spans
