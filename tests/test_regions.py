from __future__ import annotations

import itertools

import pytest
from PIL import Image

from docvlm.regions import crop_square, merge_tile_lines, tile_boxes
from parsers import Box, TextLine


@pytest.mark.parametrize(
    "width,height,size", [(100, 80, 896), (2000, 3000, 896), (897, 896, 896), (1275, 1651, 448)]
)
def test_tiles_cover_the_page(width: int, height: int, size: int) -> None:
    tiles = tile_boxes(width, height, size, overlap=64)
    assert all(t.width <= size and t.height <= size for t in tiles)
    for x in range(0, width, 37):
        for y in range(0, height, 41):
            assert any(t.x0 <= x < t.x1 and t.y0 <= y < t.y1 for t in tiles)
    if width > size:
        xs = sorted({t.x0 for t in tiles})
        assert all(b - a <= size - 64 for a, b in itertools.pairwise(xs))


def test_crop_square_pads_right_and_bottom() -> None:
    page = Image.new("RGB", (1000, 1000), "black")
    crop = crop_square(page, Box(x0=100, y0=200, x1=400, y1=300))
    assert crop.image.size == (300, 300)
    assert crop.frame == Box(x0=100, y0=200, x1=400, y1=500)
    assert crop.image.getpixel((5, 150)) == (255, 255, 255)


def test_overlapping_tiles_keep_each_line_once() -> None:
    """Lines at known page positions, each seen by every tile that fully contains it."""
    width, height, size = 1600, 900, 896
    tiles = tile_boxes(width, height, size, overlap=200)
    truth = [
        TextLine(text=f"line {i}", box=Box(x0=x, y0=y, x1=x + 180, y1=y + 20))
        for i, (x, y) in enumerate((x, y) for y in range(40, 860, 60) for x in (50, 650, 1300))
    ]
    per_tile = tuple(
        tuple(
            line for line in truth if line.box and tile.x0 <= line.box.x0 and line.box.x1 <= tile.x1
        )
        for tile in tiles
    )
    merged = merge_tile_lines(tiles, list(per_tile))
    assert sorted(line.text for line in merged) == sorted(line.text for line in truth)


def test_unboxed_duplicates_from_neighbours_are_dropped() -> None:
    tiles = tile_boxes(1200, 400, 896, overlap=200)
    lines = [(TextLine(text="a"), TextLine(text="b")), (TextLine(text="b"), TextLine(text="c"))]
    assert [ln.text for ln in merge_tile_lines(tiles, lines)] == ["a", "b", "c"]
