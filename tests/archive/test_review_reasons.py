"""Each reason of ``docvlm review`` from the record that earns it: a failed page, a blank
region, a table repaired by its parser, an answer cut at the token limit, a turned page."""

from __future__ import annotations

import math

from docvlm.archive.records import build_document
from docvlm.archive.review import REASONS, review, review_items
from docvlm.reading.reads import Read, finish_reads
from docvlm.results import Page
from docvlm.testing import scripted_generation
from parsers import Box

FRAME = Box(x0=0, y0=0, x1=448, y1=448)


def _page(number: int, task: str, tokens: list[tuple[str, float]], stop: str = "eos") -> Page:
    read = Read(task, FRAME, (FRAME,), (FRAME,), "p", "c")  # type: ignore[arg-type]
    (result,) = finish_reads("s.pdf", number, [read], [scripted_generation(tokens, stop)])  # type: ignore[arg-type]
    return Page(number=number, status=result.status, results=(result,))


def test_every_reason_comes_from_its_record() -> None:
    boxed = [("<loc0001><loc0002><loc0100><loc0200>", -0.1), ("half", -0.3)]
    cut = _page(1, "text", boxed, "length")
    # a cell left open: the parser closes it and says so in Table.repairs
    repaired = _page(2, "table", [("<table><tr><td>", -0.05), ("7", -0.1)])
    blank_read = Read("text", FRAME, (), (), "p", "c")
    (blank,) = finish_reads("s.pdf", 3, [blank_read], [])
    failed = Page(number=4, status="error", error="cannot decode the image")

    class TurnedPage(Page):  # the orientation fields, as orientation support adds them
        rotation: int = 0

    turned = TurnedPage(number=5, status="ok", results=cut.results, rotation=180)
    fixed = _page(6, "text", boxed, "length")  # cut too, but a person corrected it since
    fixed = fixed.model_copy(
        update={"results": (fixed.results[0].model_copy(update={"corrected": True}),)}
    )
    pages = [cut, repaired, Page(number=3, status="ok", results=(blank,)), failed, turned, fixed]
    document = build_document("s.pdf", pages, sha256="ab" * 32)
    found = {(item.page, item.reasons) for item in review_items(document)}
    assert found == {
        (1, ("length",)),
        (2, ("suspect",)),
        (3, ("blank",)),
        (4, ("page_error",)),
        (5, ("length", "turned")),
    }
    assert set(REASONS) >= {reason for _, reasons in found for reason in reasons}
    ranked = review([document])
    # broken first (the failed page has no number, then the cut answers by confidence)
    assert [item.page for item in ranked] == [4, 1, 5, 3, 2]
    assert ranked[1].confidence == math.exp((-0.1 - 0.3) / 2)
    assert ranked[4].confidence == math.exp((-0.05 - 0.1) / 2)  # the open cell's tokens
    assert ranked[0].detail == "cannot decode the image"


def test_docs_review_lists_each_reason_of_the_vocabulary_and_schema() -> None:
    """docs/review.md's table of reasons is ``REASONS``, and ``docvlm schema review``'s enum."""
    from pathlib import Path

    from docvlm.archive.review import review_schema

    text = (Path(__file__).parents[2] / "docs" / "review.md").read_text(encoding="utf-8")
    table = text.split("| reason | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = [row.split("`")[1] for row in table.splitlines() if row.startswith("| `")]
    assert documented == list(REASONS)
    schema = review_schema()
    enum = schema["$defs"]["ReviewItem"]["properties"]["reasons"]["items"]["enum"]
    assert enum == list(REASONS)
