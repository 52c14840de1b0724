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


#: A boxed line that ends within this many line heights of a tile edge inside the page
#: was cut by it (the OCR drops the partial characters at the edge).
CUT_MARGIN = 1.0


@dataclass(frozen=True)
class _Piece:
    line: TextLine
    box: Box
    tile: int
    cut_left: bool
    cut_right: bool


def _same_row(a: Box, b: Box) -> bool:
    overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
    return overlap >= 0.5 * min(a.height, b.height) > 0


def _join_text(left: str, right: str) -> str:
    """``left`` and ``right`` with the characters both tiles read written once."""
    for size in range(min(len(left), len(right)), 2, -1):
        if left.endswith(right[:size]):
            return left + right[size:]
    return f"{left} {right}"


def _join_cut_lines(pieces: list[_Piece]) -> list[_Piece]:
    """Join fragments of lines that a vertical tile edge cut, left to right."""
    pieces = sorted(pieces, key=lambda p: (p.box.y0, p.box.x0))
    joined: list[_Piece] = []
    used: set[int] = set()
    for i, piece in enumerate(pieces):
        if i in used:
            continue
        used.add(i)
        current = piece
        while current.cut_right:
            match = next(
                (
                    j
                    for j, other in enumerate(pieces)
                    if j not in used
                    and other.tile != current.tile
                    and _same_row(current.box, other.box)
                    and other.box.x0 <= current.box.x1 + CUT_MARGIN * current.box.height
                    and current.box.x1 < other.box.x1
                ),
                None,
            )
            if match is None:
                break
            used.add(match)
            other = pieces[match]
            box = Box(
                x0=current.box.x0,
                y0=min(current.box.y0, other.box.y0),
                x1=other.box.x1,
                y1=max(current.box.y1, other.box.y1),
            )
            text = _join_text(current.line.text, other.line.text)
            scores = [p.line.confidence for p in (current, other) if p.line.confidence is not None]
            line = TextLine(text=text, box=box, confidence=min(scores) if scores else None)
            current = _Piece(line, box, other.tile, current.cut_left, other.cut_right)
        joined.append(current)
    return joined


def merge_tile_lines(
    tiles: list[Box], lines_per_tile: list[tuple[TextLine, ...]]
) -> list[TextLine]:
    """Lines of all tiles, without the duplicates overlaps produce or the cuts edges make.

    A whole boxed line is kept by the tile whose core holds its centre. A line touching an
    inner tile edge was cut there: its fragments from neighbouring tiles are joined (the
    characters both read written once), and a fragment that a whole line already covers
    is dropped. An unboxed line (plain ``ocr`` output) is dropped when the previous tile
    ended with the same text.
    """
    if not tiles:
        return []
    left_edge = min(t.x0 for t in tiles)
    right_edge = max(t.x1 for t in tiles)
    whole: list[TextLine] = []
    pieces: list[_Piece] = []
    previous: set[str] = set()
    for index, (tile, lines) in enumerate(zip(tiles, lines_per_tile, strict=True)):
        core = _core(tile, tiles)
        seen: set[str] = set()
        for line in lines:
            seen.add(line.text)
            if line.box is None:
                if line.text not in previous:
                    whole.append(line)
                continue
            box = line.box
            margin = CUT_MARGIN * box.height
            cut_left = box.x0 - tile.x0 <= margin and tile.x0 > left_edge
            cut_right = tile.x1 - box.x1 <= margin and tile.x1 < right_edge
            if cut_left or cut_right:
                pieces.append(_Piece(line, box, index, cut_left, cut_right))
                continue
            cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
            if (core.x0 <= cx < core.x1 or cx == tile.x1) and (
                core.y0 <= cy < core.y1 or cy == tile.y1
            ):
                whole.append(line)
        previous = seen
    boxed = [line.box for line in whole if line.box is not None]
    for piece in _join_cut_lines(pieces):
        covered = any(
            _same_row(piece.box, box) and piece.box.intersection(box) >= 0.8 * piece.box.area
            for box in boxed
        )
        if not covered:
            whole.append(piece.line)
            boxed.append(piece.box)
    if all(line.box is not None for line in whole):
        whole.sort(key=lambda ln: (ln.box.y0, ln.box.x0) if ln.box else (0.0, 0.0))
    return whole


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
