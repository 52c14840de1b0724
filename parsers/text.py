"""OCR output: plain lines, or words and lines each led by a ``<loc>`` box."""

from __future__ import annotations

import re

from pydantic import Field

from parsers.base import Box, Frozen, check_size
from parsers.locations import BINS, box_from_bins

__all__ = ["TextLine", "TextLines", "parse_text"]

_BOX = re.compile(r"<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})>")
_STRAY = re.compile(r"<(?:loc\d{4}|seg\d{3})>")


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

    With location tokens, each box starts a new item that runs to the next box (a ``;``
    or newline also ends it); boxes are scaled to ``width`` x ``height`` pixels (by default
    left in bins, 0-1024). Without them, each non-empty line of the text is one item.
    """
    check_size(text)
    boxes = list(_BOX.finditer(text))
    if not boxes:
        plain = _STRAY.sub("", text)
        return TextLines(
            lines=tuple(TextLine(text=line.strip()) for line in plain.splitlines() if line.strip())
        )
    lines = []
    leading = _STRAY.sub("", text[: boxes[0].start()]).strip(" ;\n")
    if leading:
        lines.append(TextLine(text=leading))
    for index, match in enumerate(boxes):
        end = boxes[index + 1].start() if index + 1 < len(boxes) else len(text)
        body = _STRAY.sub("", text[match.end() : end])
        y0, x0, y1, x1 = (int(match.group(i)) for i in range(1, 5))
        box = box_from_bins(y0, x0, y1, x1, width, height)
        parts = [p.strip() for p in re.split(r"[;\n]", body)]
        if parts and parts[0]:
            lines.append(TextLine(text=parts[0], box=box))
        lines.extend(TextLine(text=p) for p in parts[1:] if p)
    return TextLines(lines=tuple(lines))
