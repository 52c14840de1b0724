"""``docvlm review OUT``: a real ``docvlm convert`` of pages whose answers have chosen
per-token log-probabilities (a ``ScriptedEngine``), into JSON Lines, Parquet and an output
folder; then the review of each, item by item, weakest first, valid under ``docvlm schema
review`` (jsonschema)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import scribbled
from PIL import Image
from typer.testing import CliRunner

import docvlm
import docvlm.client
from docvlm.archive.edits import Correction
from docvlm.archive.review import partly_corrected
from docvlm.cli import app
from docvlm.engines import Request
from docvlm.reading.requests import Generation
from docvlm.testing import ScriptedEngine, scripted_generation

LOC = "<loc0010>", "<loc0020>", "<loc0100>", "<loc0300>"
#: Each page is told apart by the colour of a mark in its top left corner.
MARKS = {"weak.png": (200, 0, 0), "broken.png": (0, 150, 0), "looped.png": (0, 0, 200)}

# (text, logprob) tokens of each answer; the lines' and cells' tokens are named so that
# the expected confidences are computed from them below.
WEAK_LINE_1 = [(LOC[0], -0.01), (LOC[1], -0.01), (LOC[2], -0.02), (LOC[3], -0.02), ("Hel", -0.1)]
WEAK_LINE_2 = [(LOC[0], -0.05), (LOC[1], -0.05), (LOC[2], -0.05), (LOC[3], -0.05), ("9", -2.5)]
WEAK_TEXT = [*WEAK_LINE_1, ("\n", -0.3), *WEAK_LINE_2, ("", -0.01)]
CELL_1 = [("<td>", -0.02), ("1", -0.4), ("</td>", -0.01)]
CELL_2 = [("<td>", -0.02), ("2", -0.05), ("</td>", -0.01)]
WEAK_TABLE = [("<table>", -0.01), ("<tr>", -0.01), *CELL_1, *CELL_2, ("</tr>", -0.02)]
WEAK_TABLE += [("</table>", -0.01), ("", -0.03)]
GOOD_LINE = [(LOC[0], -0.01), (LOC[1], -0.01), (LOC[2], -0.01), (LOC[3], -0.01), ("ok", -0.02)]
BAD_TABLE = [("no", -0.7), (" table", -0.9), ("", -0.1)]
LOOP = [("ab", -0.2)] * 6


def mean(tokens: list[tuple[str, float]]) -> float:
    """The documented formula: the geometric mean of the tokens' probabilities."""
    return math.exp(sum(logprob for _, logprob in tokens) / len(tokens))


def answer(request: Request) -> Generation | str:
    mark = request.image.getpixel((2, 2))
    page = next(name for name, colour in MARKS.items() if colour == mark)
    table = request.prompt.startswith("table")
    if page == "weak.png":
        return scripted_generation(WEAK_TABLE if table else WEAK_TEXT)
    if page == "broken.png":
        return scripted_generation(BAD_TABLE if table else [*GOOD_LINE, ("", -0.01)])
    if table:  # an engine that gives no log-probabilities
        return "<table><tr><td>x</td></tr></table>"
    return scripted_generation(LOOP, stop="repetition")


class ScriptedDocVLM(docvlm.DocVLM):  # the package's class: a test may swap the module's
    def __init__(self, settings: Any = None, **options: Any) -> None:
        options["engine_factory"] = lambda checkpoint, settings: ScriptedEngine(answer)
        super().__init__(settings, **options)


@pytest.fixture()
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, colour in MARKS.items():
        image = scribbled((400, 300))
        image.paste(Image.new("RGB", (12, 12), colour), (0, 0))
        image.save(folder / name)
    (folder / "unreadable.png").write_bytes(b"not an image at all")
    return folder


def expected(folder: Path) -> list[dict[str, Any]]:
    """The review, weakest first, from the scripted numbers (docs/review.md's order)."""

    def item(name: str, page: int | None, result: int | None, **fields: Any) -> dict[str, Any]:
        return {"source": str(folder / name), "page": page, "result": result, **fields}

    return [
        # broken or incomplete first, unknown confidence (None) before any number
        item("unreadable.png", None, None, task=None, confidence=None,
             reasons=["document_failure"]),
        item("broken.png", 1, 1, task="table", confidence=mean(BAD_TABLE),
             reasons=["parse_error"]),
        item("looped.png", 1, 0, task="text", confidence=mean(LOOP), reasons=["repetition"]),
        # then the results that recorded no log-probabilities
        item("looped.png", 1, 1, task="table", confidence=None, reasons=["no_confidence"]),
        # then by confidence: a result is as good as its weakest line or cell
        item("weak.png", 1, 0, task="text", confidence=mean(WEAK_LINE_2), reasons=[]),
        item("weak.png", 1, 1, task="table", confidence=mean(CELL_1), reasons=[]),
        item("broken.png", 1, 0, task="text", confidence=mean(GOOD_LINE), reasons=[]),
    ]  # fmt: skip


def convert(folder: Path, out: Path | str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docvlm.client, "DocVLM", ScriptedDocVLM)
    command = ["convert", str(folder), "-t", "text", "-t", "table", "-c", "scripted"]
    result = CliRunner().invoke(app, [*command, "--log-format", "json", "-o", str(out)])
    assert result.exit_code == 1, result.output  # unreadable.png failed, the rest converted


def review(out: Path | str, *options: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["review", str(out), "--json", *options])
    assert result.exit_code == 0, result.output
    items: list[dict[str, Any]] = json.loads(result.stdout)
    return items


def schema() -> dict[str, Any]:
    result = CliRunner().invoke(app, ["schema", "review"])
    assert result.exit_code == 0, result.output
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize("destination", ["out.jsonl", "out.parquet", "out/"])
def test_review_lists_the_weakest_first_with_reasons(
    destination: str, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = f"{tmp_path}/{destination}"
    convert(inputs, out, monkeypatch)
    items = review(out)
    jsonschema.validate(items, schema())
    wanted = expected(inputs)
    assert [(i["source"], i["page"], i["result"]) for i in items] == [
        (w["source"], w["page"], w["result"]) for w in wanted
    ]
    for got, want in zip(items, wanted, strict=True):
        assert (got["task"], got["reasons"]) == (want["task"], want["reasons"]), got
        if want["confidence"] is None:
            assert got["confidence"] is None
        else:
            assert got["confidence"] == pytest.approx(want["confidence"], rel=1e-9)
        assert got["sha256"] == hashlib.sha256(Path(got["source"]).read_bytes()).hexdigest()
    assert items[1]["detail"]  # the parse error says why


def test_below_task_and_limit(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    convert(inputs, out, monkeypatch)
    wanted = expected(inputs)
    threshold = (mean(WEAK_LINE_2) + mean(CELL_1)) / 2
    below = review(out, "--below", f"{threshold}")
    assert mean(LOOP) > threshold > mean(BAD_TABLE)
    # what lies under it, and what is broken or unknown whatever its number
    assert [(i["source"], i["result"]) for i in below] == [
        (w["source"], w["result"]) for w in wanted[:5]
    ]
    assert [i["reasons"] for i in below] == [
        ["document_failure"],
        ["parse_error", "low_confidence"],
        ["repetition"],
        ["no_confidence"],
        ["low_confidence"],
    ]
    tables = review(out, "--task", "table")
    assert [(i["source"], i["task"]) for i in tables] == [
        (w["source"], w["task"]) for w in wanted if w["task"] == "table"
    ]
    assert review(out, "--limit", "2") == review(out)[:2]
    table = CliRunner().invoke(app, ["review", str(out)])
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["document", "page", "task", "confidence", "why"]
    assert lines[3].split()[:4] == [str(inputs / "looped.png"), "1", "text", f"{mean(LOOP):.3f}"]
    assert lines[3].split()[-1] == "repetition"


def test_a_missing_output_or_one_that_is_not_an_output_is_one_line(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["review", str(tmp_path / "nothing.jsonl")])
    assert missing.exit_code == 2  # a usage error: the path is not there
    assert missing.stderr.strip() == f"error: {tmp_path / 'nothing.jsonl'}: no such file or folder"
    (tmp_path / "notes.txt").write_text("not records\n")
    other = CliRunner().invoke(app, ["review", str(tmp_path / "notes.txt")])
    assert other.exit_code == 1
    assert other.stderr.strip() == (
        f"error: {tmp_path / 'notes.txt'}: not a conversion output (a JSONL of Documents, "
        "a Parquet file or folder of parts, a folder of JSONL parts, or an output folder of "
        "NAME/document.json)"
    )


def test_a_page_marked_reviewed_leaves_the_queue_until_unmarked(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    convert(inputs, out, monkeypatch)
    before = review(out)
    weakest = next(i for i in before if i["page"] is not None)
    page = (weakest["sha256"], weakest["page"])
    marks = tmp_path / "marks.jsonl"

    def mark(reviewed: bool) -> None:
        line = {"sha256": page[0], "page": page[1], "reviewed": reviewed}
        marks.write_text(json.dumps(line) + "\n", encoding="utf-8")
        result = CliRunner().invoke(app, ["correct", str(out), str(marks)])
        assert result.exit_code == 0, result.output

    mark(True)
    assert review(out) == [i for i in before if (i["sha256"], i["page"]) != page]
    mark(False)
    assert review(out) == before


def test_a_staging_folder_is_not_a_record(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed while it staged a document leaves ``.tmp-NAME/``: half written, it is
    not read as a record (the next run removes it)."""
    out = tmp_path / "out"
    convert(inputs, f"{out}/", monkeypatch)
    before = review(out)
    staged = out / ".tmp-half-written"
    staged.mkdir()
    (staged / "document.json").write_text('{"source": "half', encoding="utf-8")
    assert review(out) == before


def test_a_result_corrected_in_parts_is_vouched_for_whole_or_by_its_page() -> None:
    """``partly_corrected``: the results some lines or cells of which were corrected, but
    not corrected whole (``value``) and not on a page marked reviewed (last mark wins)."""
    a, b = "a" * 64, "b" * 64
    line = Correction(sha256=a, page=1, result=0, line=3, text="checked")
    cell = Correction(sha256=b, page=2, result=1, cell=(1, 0), text="checked")
    assert partly_corrected([line, cell]) == {(a, 1, 0), (b, 2, 1)}
    whole = Correction(sha256=a, page=1, result=0, value="the whole text")
    assert partly_corrected([line, whole, cell]) == {(b, 2, 1)}
    assert partly_corrected([whole, line, cell]) == {(b, 2, 1)}  # a line fixed after the whole
    other = Correction(sha256=a, page=1, result=1, value="another result")
    assert partly_corrected([line, other]) == {(a, 1, 0)}
    mark = Correction(sha256=b, page=2, reviewed=True)
    assert partly_corrected([line, cell, mark]) == {(a, 1, 0)}
    assert partly_corrected([mark, cell]) == set()  # the page was read whole, the cell too
    assert partly_corrected([cell, Correction(sha256=b, page=1, reviewed=True)]) == {(b, 2, 1)}
    unmark = Correction(sha256=b, page=2, reviewed=False)
    assert partly_corrected([cell, mark, unmark]) == {(b, 2, 1)}
