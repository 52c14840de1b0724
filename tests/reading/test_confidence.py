"""Confidence per part: tokens attributed to lines and cells by character offsets, and
each part scored by the geometric mean of its tokens' probabilities (docs/review.md)."""

from __future__ import annotations

import json
import math
import re

import pytest

from docvlm.reading.confidence import TokenSpans, page_confidence, result_confidence
from docvlm.reading.reads import Read, finish_reads
from docvlm.reading.regions import merge_tile_lines
from docvlm.reading.requests import Generation
from docvlm.results import Page, TextResult
from docvlm.testing import scripted_generation
from parsers import Box, TextLine, parse_table, parse_text

LOC = re.compile(r"<loc\d{4}>")


def test_each_token_counts_for_the_parts_its_characters_overlap() -> None:
    generation = scripted_generation([("ab", -0.1), ("c\nd", -1.0), ("e", -0.5), ("", -3.0)])
    spans = TokenSpans(generation)
    assert spans.score(0, 2) == pytest.approx(math.exp(-0.1))  # "ab"
    assert spans.score(0, 3) == pytest.approx(math.exp(-1.1 / 2))  # "abc": two tokens
    assert spans.score(4, 6) == pytest.approx(math.exp(-1.5 / 2))  # "de"
    assert spans.score(6, 6) is None  # the end-of-sequence token belongs to no part
    assert spans.score(2, 2) is None


def test_a_character_split_over_byte_tokens_is_scored_by_all_of_them() -> None:
    # "€" written as three byte tokens: the first two write nothing until the third does
    generation = Generation(
        text="x€", token_ids=(1, 2, 3, 4), logprobs=(-0.2, -1.0, -2.0, -3.0), ends=(1, 1, 1, 2)
    )
    assert TokenSpans(generation).score(1, 2) == pytest.approx(math.exp(-6.0 / 3))
    assert TokenSpans(generation).score(0, 1) == pytest.approx(math.exp(-0.2))


def test_without_offsets_or_logprobs_there_is_no_number() -> None:
    assert TokenSpans(Generation(text="abc")).score(0, 3) is None
    assert TokenSpans(Generation(text="ab", logprobs=(-0.1, -0.1))).score(0, 2) is None


def test_text_lines_are_scored_by_their_box_and_text() -> None:
    raw = "<loc0010><loc0020><loc0100><loc0300>first; line\nsecond ; "
    raw += "<loc0200><loc0020><loc0300><loc0300>third"
    spans: list[str] = []

    def record(start: int, end: int) -> float:
        spans.append(raw[start:end])
        return 0.5

    lines = parse_text(raw, 1024, 1024, record).lines
    assert [line.text for line in lines] == ["first; line", "second", "third"]
    # each span is what wrote the line: its box (if any) and its text, no separator
    assert [LOC.sub("", span).strip() for span in spans] == ["first; line", "second", "third"]
    assert [len(LOC.findall(span)) for span in spans] == [4, 0, 4]
    assert all(line.confidence == 0.5 for line in lines)


def test_table_cells_are_scored_from_their_tag_to_their_end() -> None:
    raw = '<table><tr><td coords="<loc0001><loc0002><loc0010><loc0020>">a<b>1</b></td><td>b</tr>'
    spans: list[str] = []
    table = parse_table(raw, 1024, 1024, lambda a, b: spans.append(raw[a:b]) or 0.25)
    assert spans == ['<td coords="<loc0001><loc0002><loc0010><loc0020>">a<b>1</b></td>', "<td>b"]
    assert [c.text for c in table.cells] == ["a1", "b"]
    assert [c.confidence for c in table.cells] == [0.25, 0.25]


def test_a_page_is_as_good_as_its_weakest_part() -> None:
    text = [("<loc0010><loc0020><loc0100><loc0300>", -0.01), ("fine", -0.01), ("\n", -1.0)]
    text += [("<loc0200><loc0020><loc0300><loc0300>", -0.02), ("b4d", -2.0), ("", -0.1)]
    cells = [("<table><tr>", -0.1), ("<td>", -0.1), ("x", -0.3), ("</td>", -0.1)]
    cells += [("</tr></table>", -0.1), ("", -0.1)]
    molecule = [("C", -0.4), ("C", -0.2), ("O", -0.3), ("", -0.1)]
    frame = Box(x0=0, y0=0, x1=448, y1=448)
    reads = [
        Read(task, frame, (frame,), (frame,), "p", "c") for task in ("text", "table", "molecule")
    ]
    generations = [scripted_generation(t) for t in (text, cells, molecule)]
    results = finish_reads("s.png", 1, reads, generations)
    weakest_line = math.exp((-0.02 - 2.0) / 2)
    assert [line.confidence for line in results[0].lines] == pytest.approx(  # type: ignore[union-attr]
        [math.exp(-0.01), weakest_line]
    )
    assert results[0].confidence == pytest.approx(math.exp(sum(lp for _, lp in text) / 6))
    assert result_confidence(results[0]) == pytest.approx(weakest_line)
    assert result_confidence(results[1]) == pytest.approx(math.exp(-0.5 / 3))  # the cell
    assert result_confidence(results[2]) == pytest.approx(math.exp(-1.0 / 4))  # all of it
    page = Page(number=1, status="ok", results=tuple(results))
    assert page_confidence(page) == page.confidence == pytest.approx(weakest_line)
    # the record carries it, and a record read back decides it again from its results
    record = json.loads(page.model_dump_json())
    assert record["confidence"] == pytest.approx(weakest_line)
    record["confidence"] = 0.99
    assert Page.model_validate(record).confidence == pytest.approx(weakest_line)
    # a result a person corrected is theirs, no longer the model's weakest part
    fixed = results[0].model_copy(update={"corrected": True})
    corrected = page.model_copy(update={"results": (fixed, *results[1:])})
    assert corrected.confidence == pytest.approx(math.exp(-1.0 / 4))  # the molecule now
    assert Page(number=1, status="ok").confidence is None


def test_parquet_rows_carry_the_page_confidence() -> None:
    from docvlm import Document
    from docvlm.archive.parquet import document_rows

    line = TextLine(text="x", box=Box(x0=0, y0=0, x1=9, y1=9), confidence=0.25)
    frame = Box(x0=0, y0=0, x1=9, y1=9)
    result = TextResult(
        source="s.png", page=1, box=frame, checkpoint="c", prompt="p", raw="x", lines=(line,)
    )
    page = Page(number=1, status="ok", results=(result,))
    document = Document(source="s.png", sha256="0" * 64, status="success", pages=(page,))
    (row,) = document_rows(document)
    assert row["page_confidence"] == 0.25


def test_a_line_joined_across_tiles_keeps_its_weaker_fragment() -> None:
    tiles = [Box(x0=0, y0=0, x1=448, y1=448), Box(x0=352, y0=0, x1=800, y1=448)]
    left = TextLine(text="a long li", box=Box(x0=40, y0=100, x1=446, y1=120), confidence=0.9)
    right = TextLine(text="line ends", box=Box(x0=354, y0=100, x1=700, y1=120), confidence=0.4)
    (joined,) = merge_tile_lines(tiles, [(left,), (right,)])
    assert joined.box is not None and joined.box.x1 == 700
    assert joined.confidence == 0.4
