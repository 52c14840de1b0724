from __future__ import annotations

import itertools

import pytest
from PIL import Image

from docvlm.reading.regions import crop_square, merge_tile_lines, tile_boxes
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


def test_generated_page_read_through_tiles_gives_each_line_once_and_whole() -> None:
    """A page drawn with lines at known places (some long enough to cross tile edges),
    read by a fake OCR that returns, for each tile, the characters it fully sees with
    their boxes: the pipeline must give every line once, whole, at its page position."""
    from PIL import ImageDraw

    from docvlm import DocVLM, Settings
    from docvlm.engines import Request
    from docvlm.reading.ink import InkMap
    from docvlm.reading.reads import TILE_OVERLAP
    from docvlm.testing import ScriptedEngine
    from parsers import box_to_tokens

    char_w, line_h, size = 8, 14, 448
    truth = [
        (40, 30, "a short heading"),
        (40, 80, "a long line of body text that runs across the edge between two tiles ok"),
        (300, 130, "starts in the first tile and ends in the second one"),
        (420, 500, "sits in the overlap"),
        (40, 700, "a long line of body text that runs across the edge between two tiles ok"),
    ]
    page = Image.new("RGB", (1000, 800), "white")
    draw = ImageDraw.Draw(page)
    for x, y, text in truth:
        draw.text((x, y), text, fill="black")
    tiles = tile_boxes(1000, 800, size, min(TILE_OVERLAP, size // 4))
    ink = InkMap.of(page)  # tiles without ink are not requested (docvlm.reading.ink)
    tiles = [tile for tile in tiles if ink.has_ink(tile)]
    calls = iter(range(len(tiles)))

    def ocr(request: Request) -> str:
        tile = tiles[next(calls)]
        side = request.image.width
        out = []
        for x, y, text in truth:
            if not (tile.y0 <= y and y + line_h <= tile.y1):
                continue
            seen = [
                i
                for i in range(len(text))
                if tile.x0 <= x + i * char_w and x + (i + 1) * char_w <= tile.x1
            ]
            if not seen:
                continue
            first, last = seen[0], seen[-1]
            box = Box(
                x0=x + first * char_w - tile.x0,
                y0=y - tile.y0,
                x1=x + (last + 1) * char_w - tile.x0,
                y1=y + line_h - tile.y0,
            )
            out.append(box_to_tokens(box, side, side) + " " + text[first : last + 1])
        return " ; ".join(out)

    engine = ScriptedEngine(ocr, resolution=size)
    client = DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="fake")
    (result,) = client.read_text(page)
    assert sorted(line.text for line in result.lines) == sorted(text for _, _, text in truth)
    for line in result.lines:
        assert line.box is not None
        box = line.box
        x, y, text = min((t for t in truth if t[2] == line.text), key=lambda t: abs(t[1] - box.y0))
        assert abs(line.box.x0 - x) <= 2 and abs(line.box.y0 - y) <= 2
        assert abs(line.box.x1 - (x + len(text) * char_w)) <= 2
