"""``docvlm correct`` takes a line's values as typed (a misspelt ``"reviewed": "yes"`` is
refused, not read as true), a file saved with a byte order mark, and says a missing file
is a usage error; ``docvlm schema correction`` states the types."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from answered_convert import refusals, tables_converted
from typer.testing import CliRunner

from docvlm.archive.output import Output
from docvlm.cli import app
from docvlm.errors import ExitCode
from docvlm.results import TableResult


def _cell(out: Path, row: int, col: int) -> str:
    (document,) = Output.existing(out).records()
    table = document.pages[0].results[0]
    assert isinstance(table, TableResult) and table.corrected and table.table is not None
    return table.table.grid()[row][col]


def test_loosely_typed_values_are_refused_line_by_line(corpus: Path, tmp_path: Path) -> None:
    (document,) = tables_converted(corpus, tmp_path, "out/", 1)
    page = {"sha256": document.sha256, "page": 1}
    lines = [
        {**page, "reviewed": "yes"},  # a word, not true: the page stays in review
        {**page, "page": "1", "reviewed": True},
        {**page, "result": 0, "cell": [1], "text": "x"},
        {**page, "result": 0, "cell": [1, "1"], "text": "x"},
        {**page, "result": True, "cell": [1, 1], "text": "x"},
        {**page, "result": 0, "cell": [1, 1], "text": 0.717},
        {**page, "result": 0, "cell": [1, 1], "text": "0.717"},  # good: a JSON list is a cell
    ]
    file = tmp_path / "fix.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = CliRunner().invoke(app, ["correct", str(tmp_path / "out"), str(file)])
    assert result.exit_code == ExitCode.FAILED, result.stderr
    causes = refusals(result.stderr)
    assert sorted(causes) == [1, 2, 3, 4, 5, 6]
    assert "reviewed: Input should be a valid boolean" in causes[1]
    assert "page: Input should be a valid integer" in causes[2]
    assert "cell: give [row, col], two whole numbers (not [1])" in causes[3]
    assert "cell: give [row, col]" in causes[4]
    assert "result: Input should be a valid integer" in causes[5]
    assert "text: Input should be a valid string" in causes[6]
    assert "applied 1 correction(s), refused 6" in result.stderr
    store = Output.existing(tmp_path / "out").corrections()
    assert not store.reviewed(str(document.sha256), 1)
    assert _cell(tmp_path / "out", 1, 1) == "0.717"


def test_a_file_saved_with_a_byte_order_mark_is_read(corpus: Path, tmp_path: Path) -> None:
    (document,) = tables_converted(corpus, tmp_path, "out/", 1)
    file = tmp_path / "fix.jsonl"
    edit = {"sha256": document.sha256, "page": 1, "reviewed": True}
    file.write_bytes(b"\xef\xbb\xbf" + json.dumps(edit).encode() + b"\r\n")  # as Excel saves
    result = CliRunner().invoke(app, ["correct", str(tmp_path / "out"), str(file)])
    assert result.exit_code == ExitCode.OK, result.stderr
    assert Output.existing(tmp_path / "out").corrections().reviewed(str(document.sha256), 1)


def test_a_missing_file_or_output_is_a_usage_error(corpus: Path, tmp_path: Path) -> None:
    tables_converted(corpus, tmp_path, "out/", 1)
    missing = tmp_path / "missing.jsonl"
    result = CliRunner().invoke(app, ["correct", str(tmp_path / "out"), str(missing)])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.splitlines() == [f"error: {missing}: cannot read it (no such file)"]
    result = CliRunner().invoke(app, ["review", str(tmp_path / "nothere.jsonl")])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr == f"error: {tmp_path / 'nothere.jsonl'}: no such file or folder\n"
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not a record\n")  # exists, but is no output: an input error
    result = CliRunner().invoke(app, ["review", str(garbage)])
    assert result.exit_code == ExitCode.FAILED and "not a conversion output" in result.stderr


def test_the_schema_of_a_correction_states_its_types() -> None:
    result = CliRunner().invoke(app, ["schema", "correction"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    check = jsonschema.Draft202012Validator(schema)
    good = {"sha256": "ab", "page": 1, "result": 0, "cell": [1, 1], "text": "0.717"}
    assert check.is_valid(good) and check.is_valid({"sha256": "ab", "page": 1, "reviewed": True})
    for bad in ({"reviewed": "yes"}, {"page": "1"}, {"cell": [1]}, {"cell": [1, "1"]}):
        assert not check.is_valid({**good, **bad}), bad
