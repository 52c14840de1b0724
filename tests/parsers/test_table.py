from __future__ import annotations

import json
from pathlib import Path

import pytest

from parsers import Table, TableParseError, parse_table


def _examples(corpus: Path) -> list[dict[str, object]]:
    path = corpus / "tables/pubtabnet/examples/PubTabNet_Examples.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pubtabnet_html(example: dict) -> str:  # type: ignore[type-arg]
    """Structure tokens with the cell tokens written into each cell, as a model writes them."""
    cells = iter(example["html"]["cells"])
    out = []
    for token in example["html"]["structure"]["tokens"]:
        out.append(token)
        if token in ("<td>", ">"):
            out.append("".join(next(cells)["tokens"]))
    return "".join(out)


def expected_spans(example: dict) -> list[tuple[int, int]]:  # type: ignore[type-arg]
    spans, tokens = [], example["html"]["structure"]["tokens"]
    for i, token in enumerate(tokens):
        if token == "<td>":
            spans.append((1, 1))
        elif token == "<td":
            row = col = 1
            j = i + 1
            while tokens[j] != ">":
                value = int(tokens[j].split('"')[1])
                if "rowspan" in tokens[j]:
                    row = value
                else:
                    col = value
                j += 1
            spans.append((row, col))
    return spans


def test_all_pubtabnet_examples(corpus: Path) -> None:
    examples = _examples(corpus)
    assert len(examples) == 20
    for example in examples:
        table = parse_table(pubtabnet_html(example))
        assert len(table.cells) == len(example["html"]["cells"]), example["filename"]
        assert [(c.rowspan, c.colspan) for c in table.cells] == expected_spans(example)
        assert table.repairs == ()
        rows, cols = table.shape
        covered = sum(c.rowspan * c.colspan for c in table.cells)
        assert covered <= rows * cols
        first_text = "".join(
            t for t in example["html"]["cells"][0]["tokens"] if not t.startswith("<")
        )
        assert table.cells[0].text == " ".join(first_text.split())
        # the rebuilt HTML reads back to the same grid
        again = parse_table(table.html)
        assert again == table


def test_header_and_spans() -> None:
    table = parse_table(
        '<thead><tr><td rowspan="2">Name</td><td colspan="2">Dose</td></tr>'
        "<tr><td>mg</td><td>ml</td></tr></thead><tbody><tr><td>A</td><td>1</td><td>2</td></tr>"
    )
    assert table.shape == (3, 3)
    assert table.header_rows == 2
    assert [(c.row, c.col) for c in table.cells] == [
        (0, 0),
        (0, 1),
        (1, 1),
        (1, 2),
        (2, 0),
        (2, 1),
        (2, 2),
    ]
    assert all(c.is_header for c in table.cells[:4])
    assert table.to_csv().splitlines()[1] == ",mg,ml"
    assert table.to_markdown().splitlines()[0] == "| Name | Dose |  |"
    frame = table.to_pandas()
    assert frame.shape == (1, 3)


def test_paligemma_coords_form() -> None:
    text = (
        '<table><tr><td coords="<loc0000><loc0000><loc0511><loc0511>">a</td>'
        '<td coords="<loc0000><loc0512><loc0511><loc1023>">b</td></tr></table>'
    )
    table = parse_table(text, width=200, height=100)
    first, second = table.cells
    assert (first.box.x0, first.box.y0, first.box.x1, first.box.y1) == (0, 0, 100, 50)
    assert second.box.x0 == 100 and second.box.x1 == 200
    assert "coords" not in table.html


def test_truncated_output_is_repaired() -> None:
    table = parse_table("<table><tr><td>1</td><td>2</td></tr><tr><td>3</td><td>4")
    assert table.shape == (2, 2)
    assert table.cells[-1].text == "4"
    assert table.repairs
    cut_in_tag = parse_table("<tr><td>1</td><td colsp")
    assert cut_in_tag.shape == (1, 1)
    assert any("cut off" in r for r in cut_in_tag.repairs)


def test_hostile_markup_never_survives() -> None:
    table = parse_table(
        '<tr><td onclick="x()" style="color:red"><script>alert(1)</script>'
        '<a href="http://e.vil">link</a> &lt;b&gt;</td></tr>'
    )
    assert table.html == "<table><tbody><tr><td>link &lt;b&gt;</td></tr></tbody></table>"


def test_huge_spans_are_bounded() -> None:
    table = parse_table('<tr><td colspan="99999999">x</td></tr>')
    assert table.cells[0].colspan == 1000
    with pytest.raises(TableParseError):
        parse_table("<tr>" + '<td rowspan="1" colspan="1000">x</td>' * 300 + "</tr>")


def test_no_cells_is_an_error() -> None:
    with pytest.raises(TableParseError) as info:
        parse_table("just words")
    assert info.value.raw == "just words"
    assert isinstance(parse_table("<td>x</td>"), Table)
