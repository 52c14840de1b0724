from __future__ import annotations

import pytest

from parsers import (
    MAX_INPUT_CHARS,
    Box,
    InputTooLargeError,
    box_to_tokens,
    parse_locations,
    parse_text,
)


def test_detections_map_to_pixels() -> None:
    text = (
        "<loc0000><loc0256><loc0511><loc0767> table ; <loc0512><loc0000><loc1023><loc1023> figure"
    )
    first, second = parse_locations(text, width=1024, height=2048)
    assert first.label == "table"
    assert first.box == Box(x0=256, y0=0, x1=768, y1=1024)
    assert second.label == "figure" and second.box.y1 == 2048


def test_segmentation_codes_are_kept() -> None:
    seg = "".join(f"<seg{i:03d}>" for i in range(16))
    (found,) = parse_locations(f"<loc0010><loc0020><loc0030><loc0040>{seg} cat", 100, 100)
    assert found.segmentation == tuple(range(16))
    assert found.label == "cat"


@pytest.mark.parametrize("x0,y0,x1,y1", [(0, 0, 10, 10), (100, 50, 300, 700), (5, 5, 895, 895)])
def test_tokens_round_trip(x0: int, y0: int, x1: int, y1: int) -> None:
    box = Box(x0=x0, y0=y0, x1=x1, y1=y1)
    (found,) = parse_locations(box_to_tokens(box, 896, 896) + " x", 896, 896)
    back = found.box
    for a, b in zip((back.x0, back.y0, back.x1, back.y1), (x0, y0, x1, y1), strict=True):
        assert abs(a - b) <= 896 / 1024 + 1e-9


def test_plain_and_boxed_text() -> None:
    assert parse_text("Hello world\n\nsecond line\n").text == "Hello world\nsecond line"
    boxed = parse_text(
        "<loc0000><loc0000><loc0100><loc0500> Title ; <loc0200><loc0000><loc0300><loc0500> body",
        width=1024,
        height=1024,
    )
    assert [line.text for line in boxed.lines] == ["Title", "body"]
    assert boxed.lines[1].box is not None and boxed.lines[1].box.y0 == 200
    assert parse_locations("no boxes here", 10, 10) == []


def test_box_geometry() -> None:
    box = Box(x0=1, y0=2, x1=5, y1=10)
    assert box.shift(10, 20) == Box(x0=11, y0=22, x1=15, y1=30)
    assert box.scale(2, 3) == Box(x0=2, y0=6, x1=10, y1=30)
    assert (box.width, box.height, box.area) == (4, 8, 32)
    inverted = Box(x0=5, y0=5, x1=1, y1=1)
    assert (inverted.width, inverted.height, inverted.area) == (0, 0, 0)
    other = Box(x0=3, y0=2, x1=7, y1=10)  # overlaps the right half
    assert box.intersection(other) == 16
    assert box.iou(other) == 16 / (32 + 32 - 16)
    assert box.intersection(Box(x0=6, y0=0, x1=9, y1=1)) == 0
    assert inverted.iou(inverted) == 0.0


def test_text_before_the_first_box_is_kept() -> None:
    lines = parse_text("Header <loc0000><loc0000><loc0511><loc1023> body ; tail\nnext", 100, 200)
    assert [(line.text, line.box) for line in lines.lines] == [
        ("Header", None),
        ("body ; tail", Box(x0=0, y0=0, x1=100, y1=100)),
        ("next", None),
    ]
    assert lines.text == "Header\nbody ; tail\nnext"
    # a box with nothing after it gives no line, stray tokens are removed
    empty = parse_text("<seg001>a <loc0000><loc0000><loc0001><loc0001> ; <loc0005>b<loc0005>")
    assert [line.text for line in empty.lines] == ["a", "b"]
    assert parse_text("x<loc0001>\n \ny<seg002>").text == "x\ny"


def test_a_semicolon_inside_a_line_is_text() -> None:
    """Only a ';' followed by a location token separates items (issue: "Total: 3; see
    note; p. 4" became three lines, two of them without a box)."""
    first, second = "<loc0000><loc0000><loc0100><loc0500>", "<loc0200><loc0000><loc0300><loc0500>"
    lines = parse_text(f"{first} Total: 3; see note; p. 4 ; {second} x;y;\n", 1024, 1024)
    assert [(line.text, line.box) for line in lines.lines] == [
        ("Total: 3; see note; p. 4", Box(x0=0, y0=0, x1=501, y1=101)),
        ("x;y;", Box(x0=0, y0=200, x1=501, y1=301)),
    ]
    # the separator may have no spaces, or a line break, before the next box
    tight = parse_text(f"{first}a; b;{second}c ;\n{first}d", 1024, 1024)
    assert [(line.text, line.box is not None) for line in tight.lines] == [
        ("a; b", True),
        ("c", True),
        ("d", True),
    ]


def test_box_from_bins_clamps_and_orders() -> None:
    from parsers import box_from_bins

    assert box_from_bins(512, 0, 0, 2000, 1024, 1024) == Box(x0=0, y0=0, x1=1024, y1=513)
    assert box_to_tokens(Box(x0=0, y0=0, x1=1024, y1=1024), 1024, 1024) == (
        "<loc0000><loc0000><loc1023><loc1023>"
    )


def test_out_of_range_bins_are_clamped_to_the_last_bin() -> None:
    (found,) = parse_locations("<loc2000><loc0000><loc9999><loc0512> x", 1024, 1024)
    assert (found.box.y0, found.box.y1, found.box.x0, found.box.x1) == (1023, 1024, 0, 513)


def test_locations_refuse_text_longer_than_any_output() -> None:
    with pytest.raises(InputTooLargeError):
        parse_locations("x" * (MAX_INPUT_CHARS + 1), 10, 10)
