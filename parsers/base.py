"""Shared pieces of the parsers: the frozen model base, boxes, errors and input bounds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MAX_INPUT_CHARS",
    "Box",
    "Frozen",
    "InputTooLargeError",
    "KernParseError",
    "ParseError",
    "SmilesParseError",
    "SpanScore",
    "TableParseError",
    "check_size",
]

#: How sure the model was of the characters ``start:end`` of its output (0-1), or None when
#: it cannot say: handed to a parser, which calls it once for each part it reads (a line, a
#: cell) with the part's span in the text it was given.
SpanScore = Callable[[int, int], "float | None"]

#: Longest model output any parser accepts. PaliGemma 2 writes at most 4,096 tokens and no
#: token is longer than a few dozen characters, so real output stays far below this.
MAX_INPUT_CHARS = 400_000


class Frozen(BaseModel):
    """Base of every parser result: immutable, and unknown fields are an error.

    Computed fields (``Table.html``) are written to JSON and skipped when it is read back,
    so every record docvlm writes loads into its model again.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _skip_computed(cls, data: Any) -> Any:
        computed = cls.model_computed_fields
        if computed and isinstance(data, dict) and computed.keys() & data.keys():
            return {key: value for key, value in data.items() if key not in computed}
        return data


class Box(Frozen):
    """An axis-aligned rectangle in pixels: (x0, y0) top left, (x1, y1) bottom right."""

    x0: float = Field(description="left edge in pixels")
    y0: float = Field(description="top edge in pixels")
    x1: float = Field(description="right edge in pixels")
    y1: float = Field(description="bottom edge in pixels")

    @property
    def width(self) -> float:
        return max(0.0, self.x1 - self.x0)

    @property
    def height(self) -> float:
        return max(0.0, self.y1 - self.y0)

    @property
    def area(self) -> float:
        return self.width * self.height

    def shift(self, dx: float, dy: float) -> Box:
        """The same box moved by (dx, dy)."""
        return Box(x0=self.x0 + dx, y0=self.y0 + dy, x1=self.x1 + dx, y1=self.y1 + dy)

    def scale(self, sx: float, sy: float) -> Box:
        """The same box with x multiplied by sx and y by sy."""
        return Box(x0=self.x0 * sx, y0=self.y0 * sy, x1=self.x1 * sx, y1=self.y1 * sy)

    def intersection(self, other: Box) -> float:
        w = min(self.x1, other.x1) - max(self.x0, other.x0)
        h = min(self.y1, other.y1) - max(self.y0, other.y0)
        return max(0.0, w) * max(0.0, h)

    def iou(self, other: Box) -> float:
        """Intersection over union; 0.0 when both boxes are empty."""
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


class ParseError(ValueError):
    """Model output that cannot be turned into the requested structure.

    ``raw`` holds the text that failed (cut to 10,000 characters), ``reason`` the cause.
    """

    def __init__(self, reason: str, raw: str) -> None:
        self.reason = reason
        self.raw = raw[:10_000]
        super().__init__(reason)


class InputTooLargeError(ParseError):
    """The text is longer than any model output can be (see ``MAX_INPUT_CHARS``)."""


class TableParseError(ParseError):
    """No table could be read from the text."""


class SmilesParseError(ParseError):
    """Raised by ``Molecule.to_rdkit()`` on a molecule that is not valid."""


class KernParseError(ParseError):
    """No score (or a score without notes) could be read from the kern text."""


def check_size(text: str, limit: int = MAX_INPUT_CHARS) -> None:
    """Refuse text longer than ``limit`` characters before any parsing work."""
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}", repr(text))
    if len(text) > limit:
        raise InputTooLargeError(
            f"output is {len(text):,} characters, more than the limit of {limit:,}", text
        )
