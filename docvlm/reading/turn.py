"""The turn from a page as scanned to the image the model reads, and back.

``Turn`` maps a point of the read image (the page turned upright by its quarter turn and
straightened by its skew) to the page's own pixels, and results' boxes with it; the
record keeps the bounds of each mapped box, ``Turn.outline`` its four corners.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from docvlm.reading.orient import Orientation, Rotation
from docvlm.results import LayoutResult, Result, TableResult, TextResult
from parsers import Box

__all__ = ["Turn"]

Point = tuple[float, float]


@dataclass(frozen=True)
class Turn:
    """How the read image was made from the page: ``rotation`` (clockwise quarter turns,
    degrees) then a rotation by ``skew`` degrees (lines rising to the right become level).
    ``matrix`` maps a point of the read image to the page as scanned."""

    page_size: tuple[int, int]
    size: tuple[int, int]
    rotation: Rotation
    skew: float
    confidence: float
    matrix: tuple[float, float, float, float, float, float]

    @classmethod
    def of(cls, page_size: tuple[int, int], found: Orientation, skew: float) -> Turn:
        """The turn of a page of ``page_size`` by ``found.rotation`` and ``skew``."""
        width, height = page_size
        rotation = found.rotation
        upright_size = (height, width) if rotation in (90, 270) else (width, height)
        radians = math.radians(skew)
        cos, sin = math.cos(radians), math.sin(radians)
        wu, hu = upright_size
        size = (
            math.ceil(abs(wu * cos) + abs(hu * sin) - 1e-6),
            math.ceil(abs(wu * sin) + abs(hu * cos) - 1e-6),
        )
        # read -> upright: about the centres, lines of slope ``skew`` made level
        cx, cy = size[0] / 2, size[1] / 2
        ux, uy = wu / 2, hu / 2
        a, b, c = cos, sin, ux - cos * cx - sin * cy
        d, e, f = -sin, cos, uy + sin * cx - cos * cy
        # upright -> page: the quarter turn undone
        if rotation == 90:  # upright (x, y) = (H - y, x): page x = y_u, y = H - x_u
            a, b, c, d, e, f = d, e, f, -a, -b, height - c
        elif rotation == 180:
            a, b, c, d, e, f = -a, -b, width - c, -d, -e, height - f
        elif rotation == 270:  # upright (x, y) = (y, W - x): page x = W - y_u, y = x_u
            a, b, c, d, e, f = -d, -e, width - f, a, b, c
        return cls(page_size, size, rotation, skew, found.confidence, (a, b, c, d, e, f))

    def record(self) -> dict[str, Any]:
        """The page record's fields for this turn."""
        return {
            "rotation": self.rotation,
            "skew": round(self.skew, 2),
            "orientation_confidence": round(self.confidence, 3),
        }

    @property
    def identity(self) -> bool:
        return self.rotation == 0 and self.skew == 0.0

    def image(self, page: Image.Image) -> Image.Image:
        """The read image: ``page`` turned upright and straightened (new corners white)."""
        if self.identity:
            return page
        return page.transform(
            self.size,
            Image.Transform.AFFINE,
            self.matrix,
            Image.Resampling.BICUBIC if self.skew else Image.Resampling.NEAREST,
            fillcolor="white",
        )

    def point(self, x: float, y: float) -> Point:
        """A point of the read image in page pixels."""
        a, b, c, d, e, f = self.matrix
        return (a * x + b * y + c, d * x + e * y + f)

    def outline(self, box: Box) -> tuple[Point, Point, Point, Point]:
        """The four corners of a read box on the page: top left, top right, bottom right,
        bottom left as the model read them."""
        return (
            self.point(box.x0, box.y0),
            self.point(box.x1, box.y0),
            self.point(box.x1, box.y1),
            self.point(box.x0, box.y1),
        )

    def to_page(self, box: Box) -> Box:
        """The bounds of a read box on the page."""
        corners = self.outline(box)
        xs, ys = [p[0] for p in corners], [p[1] for p in corners]
        return Box(x0=min(xs), y0=min(ys), x1=max(xs), y1=max(ys))

    def to_read(self, box: Box) -> Box:
        """The bounds of a page box in the read image (a caller's regions)."""
        a, b, c, d, e, f = self.matrix
        det = a * e - b * d
        points = [(box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1), (box.x0, box.y1)]
        back = [
            ((e * (x - c) - b * (y - f)) / det, (a * (y - f) - d * (x - c)) / det)
            for x, y in points
        ]
        xs, ys = [p[0] for p in back], [p[1] for p in back]
        return Box(x0=min(xs), y0=min(ys), x1=max(xs), y1=max(ys))

    def results_to_page(self, results: Sequence[Result]) -> list[Result]:
        """``results`` with every box mapped from the read image to the page."""
        return [self._result(result) for result in results]

    def _result(self, result: Result) -> Result:
        def moved(item: Any) -> Any:
            box = getattr(item, "box", None)
            return item if box is None else item.model_copy(update={"box": self.to_page(box)})

        update: dict[str, Any] = {"box": self.to_page(result.box)}
        if isinstance(result, LayoutResult):
            update["regions"] = tuple(moved(region) for region in result.regions)
        elif isinstance(result, TextResult):
            update["lines"] = tuple(moved(line) for line in result.lines)
        elif isinstance(result, TableResult):
            if result.table is not None:
                cells = tuple(moved(cell) for cell in result.table.cells)
                update["table"] = result.table.model_copy(update={"cells": cells})
            update["parts"] = tuple(moved(part) for part in result.parts)
        return result.model_copy(update=update)
