"""Ink: whether a page, a tile or a crop holds anything for the model to read.

A model call on blank paper costs seconds and reads nothing (a blank A4 page at 300 dpi is
70 text tiles), so reads are planned only where there is ink. The measure is cheap (one
pass of numpy over the page, about 0.1 s for A4 at 300 dpi) and errs towards reading:

- the paper colour is the page's per-channel median, so white, cream or grey paper and
  dark-background scans (light writing on black) are all measured against their own paper;
- a pixel is ink when one of its channels differs from the paper's by more than
  ``INK_CONTRAST`` levels (coloured writing on coloured paper counts; a faint grey wash,
  bleed-through or a scanner's shading does not);
- ink must be connected: the page is cut into cells about 1/300 of its short side (8 px at
  A4 300 dpi), a cell is inked when a quarter of it is ink, and only inked cells with an
  inked neighbour count. Scanner speckle and dust (isolated dots of a few pixels) never
  fill two neighbouring cells; a glyph's stroke always does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from parsers import Box

if TYPE_CHECKING:
    import numpy
    import numpy.typing as npt

__all__ = ["INK_CONTRAST", "InkMap"]

#: Levels (of 255) a pixel must differ from the paper colour to be ink. Bleed-through and
#: shading on the corpus's scans stay under 40; the faintest real writing there is over 100.
INK_CONTRAST = 64
#: Cells per short side of the page: the grain at which ink must be connected.
CELLS_PER_SIDE = 300
#: The smallest cell, in pixels: thin strokes of small images still fill a third of it.
MIN_CELL = 3


@dataclass(frozen=True)
class InkMap:
    """Where a page has connected ink, in cells of ``cell`` page pixels."""

    cells: npt.NDArray[numpy.bool_]
    cell: int

    @classmethod
    def of(cls, image: Image.Image) -> InkMap:
        """The ink map of ``image`` (any mode; measured as RGB)."""
        import numpy as np

        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        height, width = pixels.shape[:2]
        cell = max(MIN_CELL, round(min(width, height) / CELLS_PER_SIDE))
        if width == 0 or height == 0:
            return cls(np.zeros((0, 0), dtype=bool), cell)
        sample = pixels[:: max(1, height // 512), :: max(1, width // 512)].reshape(-1, 3)
        paper = np.median(sample, axis=0).astype(np.int16)
        ink = np.zeros((height, width), dtype=bool)
        for channel in range(3):
            ink |= np.abs(pixels[:, :, channel].astype(np.int16) - paper[channel]) > INK_CONTRAST
        rows, columns = math.ceil(height / cell), math.ceil(width / cell)
        padded = np.zeros((rows * cell, columns * cell), dtype=np.uint16)
        padded[:height, :width] = ink
        counts = padded.reshape(rows, cell, columns, cell).sum(axis=(1, 3))
        inked = counts * 4 >= cell * cell
        neighbour = np.zeros_like(inked)
        neighbour[1:, :] |= inked[:-1, :]
        neighbour[:-1, :] |= inked[1:, :]
        neighbour[:, 1:] |= inked[:, :-1]
        neighbour[:, :-1] |= inked[:, 1:]
        return cls(inked & neighbour, cell)

    @property
    def blank(self) -> bool:
        """True when the page has no connected ink anywhere."""
        return not bool(self.cells.any())

    def has_ink(self, box: Box) -> bool:
        """Whether ``box`` (page pixels) holds connected ink (cells it touches count)."""
        x0, y0 = max(0, int(box.x0 // self.cell)), max(0, int(box.y0 // self.cell))
        x1, y1 = math.ceil(box.x1 / self.cell), math.ceil(box.y1 / self.cell)
        return bool(self.cells[y0:y1, x0:x1].any())

    def fraction(self) -> float:
        """The share of the page's cells that hold connected ink (0 on blank paper)."""
        return float(self.cells.mean()) if self.cells.size else 0.0
