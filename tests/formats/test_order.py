"""One reading order per page: columns from the line boxes, or the layout regions."""

from __future__ import annotations

from format_pages import FOOTER, HEADER, LEFT, RIGHT, TWO_COLUMNS, two_column_document

from docvlm import TextResult
from docvlm.formats.order import column_groups, reading_order
from parsers import Box


def test_two_columns_read_left_column_then_right_between_header_and_footer() -> None:
    (page,) = two_column_document().pages
    (result,) = page.results
    assert isinstance(result, TextResult)
    # the model wrote the rows across both columns; the record keeps its order
    assert [line.text for line in result.lines][1:3] == ["left 0", "right 0"]
    blocks = reading_order(page)
    assert [[line.text for line in b.lines] for b in blocks] == [
        [HEADER[1]],
        [text for _, text in LEFT],
        [text for _, text in RIGHT],
        [FOOTER[1]],
    ]
    assert all(b.kind == "text" and b.result is result for b in blocks)
    # each line keeps the box the parser gave it (1024 bins of an 896 px square: < 1 px off)
    truth = dict((text, box) for box, text in TWO_COLUMNS)
    for line in (line for b in blocks for line in b.lines):
        expected = truth[line.text]
        assert not line.estimated
        assert abs(line.box.x0 - expected.x0) < 1 and abs(line.box.y1 - expected.y1) < 1
    left = blocks[1].box
    assert left.x0 < 61 and left.x1 < 421 and left.y0 < 121 and left.y1 > 425


def _box(x0: float, y0: float, x1: float, y1: float) -> Box:
    return Box(x0=x0, y0=y0, x1=x1, y1=y1)


def test_three_columns_and_a_heading_centred_over_a_gutter() -> None:
    boxes = [_box(300, 10, 600, 30)]  # a short heading over the first gutter
    for column, x in enumerate((50, 350, 650)):
        boxes += [_box(x, 60 + 30 * row + column, x + 250, 80 + 30 * row) for row in range(6)]
    groups = column_groups(boxes)
    assert groups == [[0], list(range(1, 7)), list(range(7, 13)), list(range(13, 19))]


def test_one_ragged_column_is_one_block_read_top_to_bottom() -> None:
    # short last lines of paragraphs, a right-aligned page number and an indented line
    widths = [500, 480, 120, 500, 510, 60, 490, 500, 200]
    boxes = [
        _box(50 + (30 if i == 3 else 0), 40 * i, 50 + w, 40 * i + 20) for i, w in enumerate(widths)
    ]
    boxes.append(_box(520, 400, 560, 420))
    shuffled = [boxes[i] for i in (4, 0, 9, 2, 1, 3, 8, 5, 7, 6)]
    (group,) = column_groups(shuffled)
    assert [shuffled[i] for i in group] == boxes


def test_words_on_one_row_read_left_to_right_though_their_boxes_wobble() -> None:
    boxes = [_box(300, 102, 380, 120), _box(50, 100, 280, 121), _box(400, 99, 480, 119)]
    assert column_groups(boxes) == [[1, 0, 2]]


def test_layout_regions_give_the_order_and_the_labels() -> None:
    from conftest import scribbled
    from format_pages import convert_scripted, model_output

    from parsers import box_to_tokens

    regions = [
        (_box(60, 30, 836, 80), "text"),
        (_box(476, 120, 836, 400), "text"),  # the right column, found first
        (_box(60, 120, 420, 400), "text"),
        (_box(60, 420, 420, 700), "table"),
    ]
    layout = " ; ".join(box_to_tokens(b, 896, 896) + f" {label}" for b, label in regions)

    def ocr_of(crop_side: int) -> str:
        return model_output([(_box(0, 0, crop_side, 20), f"a line of {crop_side}")], crop_side)

    table = "<tr><td>a</td><td>b</td></tr>"
    respond = {"detect table ; molecule ; music ; text ; figure": layout, "table html": table}
    # every text crop is a padded square of its region: the OCR answer is the same for all
    respond["ocr"] = ocr_of(896)
    document = convert_scripted(scribbled((896, 896)), respond, ["text", "table"], layout=True)
    blocks = reading_order(document.pages[0])
    assert [b.kind for b in blocks] == ["text", "text", "table", "text"]
    starts = [(b.result.box.x0, b.result.box.y0) for b in blocks]
    expected = [(60, 30), (60, 120), (60, 420), (476, 120)]
    assert all(
        abs(x - ex) <= 2 and abs(y - ey) <= 2
        for (x, y), (ex, ey) in zip(starts, expected, strict=True)
    )
    assert [b.label for b in blocks] == ["text", "text", "table", "text"]
    grid = blocks[2]
    assert [line.text for line in grid.lines] == ["a", "b"]
    assert all(line.estimated for line in grid.lines)  # no coords: the grid's slots
    assert grid.lines[1].box.x0 == grid.box.x0 + grid.box.width / 2
