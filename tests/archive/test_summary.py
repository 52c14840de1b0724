"""What a result says for people when nothing was read (issue 20): the README's first
snippet survives an output that did not parse, and ``summary()`` says why."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

import docvlm
from docvlm import DocVLM, TableResult
from docvlm.results import LayoutResult, MusicResult, TextResult
from docvlm.testing import ScriptedEngine
from parsers import Box, parse_table

ROOT = Path(__file__).resolve().parents[2]
GOOD = "<tr><td>dose</td><td>10</td></tr>"
PROVENANCE = {
    "source": "scan.pdf",
    "page": 3,
    "box": Box(x0=0, y0=0, x1=10, y1=10),
    "checkpoint": "x",
    "prompt": "p",
}


def test_the_readme_snippet_handles_an_output_that_did_not_parse(
    make_pdf: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (snippet,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[:1]
    pdf = make_pdf(2)
    answers = iter(["sorry, no table here", GOOD])  # page 1 does not parse, page 2 does
    engine = ScriptedEngine(lambda request: next(answers))

    def read_table(source: str, **options: object) -> list[TableResult]:
        with DocVLM(engine_factory=lambda c, s: engine, checkpoint="x") as client:
            return client.read_table(pdf)

    monkeypatch.setattr(docvlm, "read_table", read_table)
    exec(compile(snippet, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert parse_table(GOOD).to_markdown() in printed
    assert "page 1: table not read (parse_error): no table cells in the output" in printed


def test_summary_of_an_unparsed_result_says_why() -> None:
    table = TableResult.from_output("no table", Box(x0=0, y0=0, x1=9, y1=9), **PROVENANCE)
    assert table.status == "parse_error" and table.table is None
    assert table.summary() == "table not read (parse_error): no table cells in the output"
    music = MusicResult.from_output("**kern\n=\n*-\n", Box(x0=0, y0=0, x1=9, y1=9), **PROVENANCE)
    assert music.summary().startswith("music not read (parse_error): ")
    assert music.error and music.summary().endswith(music.error)
    blank = TableResult(raw="", stop="blank", **PROVENANCE)
    assert blank.summary() == "table not read (blank): no ink in the region"
    assert TextResult(raw="", stop="blank", **PROVENANCE).summary() == ""  # no text: empty
    layout = LayoutResult(raw="?", status="parse_error", error="bad boxes", **PROVENANCE)
    assert layout.summary() == "layout not read (parse_error): bad boxes"
    ok = TableResult.from_output(GOOD, Box(x0=0, y0=0, x1=9, y1=9), **PROVENANCE)
    assert ok.summary() == parse_table(GOOD).to_markdown()
