"""Regions of a page: checkpoint-sized tiles with overlap, and crops padded to a square.

PaliGemma sees a square input; a crop is padded with white on the right and bottom
(never stretched), so a box the model reports in the square maps back to the page by a
shift of the crop's top-left corner.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from parsers import Box, TextLine

__all__ = ["Crop", "crop_square", "merge_tile_lines", "tile_boxes"]


@dataclass(frozen=True)
class Crop:
    """A square image for the model and its frame: the square's place on the page."""

    image: Image.Image
    frame: Box
    region: Box


def tile_boxes(width: int, height: int, size: int, overlap: int = 64) -> list[Box]:
    """Tiles of ``size`` px covering the page, neighbours overlapping by ``overlap`` px."""
    if size <= overlap:
        raise ValueError("tile size must be larger than the overlap")

    def starts(length: int) -> list[int]:
        if length <= size:
            return [0]
        step = size - overlap
        values = list(range(0, length - size, step))
        values.append(length - size)
        return values

    return [
        Box(x0=x, y0=y, x1=min(x + size, width), y1=min(y + size, height))
        for y in starts(height)
        for x in starts(width)
    ]


def crop_square(page: Image.Image, region: Box, fill: str = "white") -> Crop:
    """Crop ``region`` and pad it to a square with ``fill`` at the right and bottom."""
    box = (int(region.x0), int(region.y0), round(region.x1), round(region.y1))
    part = page.crop(box)
    side = max(part.width, part.height, 1)
    square = Image.new("RGB", (side, side), fill)
    square.paste(part, (0, 0))
    frame = Box(x0=box[0], y0=box[1], x1=box[0] + side, y1=box[1] + side)
    return Crop(square, frame, Box(x0=box[0], y0=box[1], x1=box[2], y1=box[3]))


def _core(tile: Box, tiles: list[Box]) -> Box:
    """The part of a tile it owns: overlaps with neighbours are split down the middle."""
    x0, y0, x1, y1 = tile.x0, tile.y0, tile.x1, tile.y1
    for other in tiles:
        if other is tile or tile.intersection(other) == 0:
            continue
        if other.y0 == tile.y0 and other.x0 > tile.x0:
            x1 = min(x1, (other.x0 + tile.x1) / 2)
        if other.y0 == tile.y0 and other.x0 < tile.x0:
            x0 = max(x0, (tile.x0 + other.x1) / 2)
        if other.x0 == tile.x0 and other.y0 > tile.y0:
            y1 = min(y1, (other.y0 + tile.y1) / 2)
        if other.x0 == tile.x0 and other.y0 < tile.y0:
            y0 = max(y0, (tile.y0 + other.y1) / 2)
    return Box(x0=x0, y0=y0, x1=x1, y1=y1)


def merge_tile_lines(
    tiles: list[Box], lines_per_tile: list[tuple[TextLine, ...]]
) -> list[TextLine]:
    """Lines of all tiles without the duplicates their overlaps produce.

    A boxed line is kept by the tile whose core holds the line's centre; an unboxed line
    (plain ``ocr`` output) is dropped when the previous tile ended with the same text.
    """
    merged: list[TextLine] = []
    previous: set[str] = set()
    for tile, lines in zip(tiles, lines_per_tile, strict=True):
        core = _core(tile, tiles)
        seen: set[str] = set()
        for line in lines:
            if line.box is not None:
                cx = (line.box.x0 + line.box.x1) / 2
                cy = (line.box.y0 + line.box.y1) / 2
                if not (core.x0 <= cx < core.x1 or cx == tile.x1) or not (
                    core.y0 <= cy < core.y1 or cy == tile.y1
                ):
                    continue
            elif line.text in previous:
                continue
            merged.append(line)
            seen.add(line.text)
        previous = seen
    if all(line.box is not None for line in merged):
        merged.sort(key=lambda ln: (ln.box.y0, ln.box.x0) if ln.box else (0.0, 0.0))
    return merged


def reading_order(boxes: list[Box], page_width: float) -> list[int]:
    """Indices of ``boxes`` in reading order: top to bottom, left column before right.

    Boxes wider than 60% of the page are full-width and close a band; inside a band,
    boxes whose centre lies left of the page's middle come before the others.
    """
    middle = page_width / 2
    order: list[int] = []
    band: list[int] = []

    def flush() -> None:
        band.sort(key=lambda i: ((boxes[i].x0 + boxes[i].x1) / 2 >= middle, boxes[i].y0))
        order.extend(band)
        band.clear()

    for index in sorted(range(len(boxes)), key=lambda i: (boxes[i].y0, boxes[i].x0)):
        if boxes[index].width > 0.6 * page_width:
            flush()
            order.append(index)
        else:
            band.append(index)
    flush()
    return order
