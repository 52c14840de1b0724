"""Hostile model output (an over-long molecule, a lone surrogate from a custom engine) is a
result with ``parse_error`` on every path: in-process reads, the archive runner and its
JSONL and Parquet sinks, a rerun over them, and the server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import scribbled

from docvlm import DocVLM, Settings
from docvlm.archive.pipeline import Options
from docvlm.archive.runner import run_job
from docvlm.testing import ScriptedEngine
from parsers.base import MAX_INPUT_CHARS

SETTINGS = Settings(device="cpu", dpi=36, render_timeout=None)
LONG_SMILES = "C" * (MAX_INPUT_CHARS + 1)
SURROGATE = "bad \udcff"
CASES = [
    ("molecule", LONG_SMILES, f"more than the limit of {MAX_INPUT_CHARS:,}"),
    ("molecule", SURROGATE, "1 lone surrogate(s), replaced with U+FFFD"),
    ("text", SURROGATE, "1 lone surrogate(s), replaced with U+FFFD"),
    ("table", SURROGATE, "1 lone surrogate(s), replaced with U+FFFD"),
]


def _scan(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "scan.png"
    scribbled((160, 120)).save(path)  # ink: a blank page would make no model call
    return path


def _client(output: str) -> DocVLM:
    engine = ScriptedEngine(lambda request: output)
    return DocVLM(SETTINGS, checkpoint="scripted", engine_factory=lambda c, s: engine)


@pytest.mark.parametrize(("task", "output", "reason"), CASES)
def test_a_single_read_records_the_hostile_output(
    task: str, output: str, reason: str, tmp_path: Path
) -> None:
    with _client(output) as client:
        document = client.convert(_scan(tmp_path), tasks=[task])  # type: ignore[list-item]
    (result,) = document.pages[0].results
    assert result.status == "parse_error" and reason in (result.error or "")
    assert "\udcff" not in result.raw and len(result.raw) == len(output)
    json.loads(document.model_dump_json())  # serialisable: no surrogate left


@pytest.mark.parametrize("destination", ["out.jsonl", "out.parquet"])
@pytest.mark.parametrize(("task", "output", "reason"), CASES[:2])
def test_the_runner_writes_a_parse_error_and_a_rerun_goes_on(
    task: str, output: str, reason: str, destination: str, tmp_path: Path
) -> None:
    source = _scan(tmp_path / "in")
    out = tmp_path / destination
    options = Options(tasks=(task,), dpi=36)  # type: ignore[arg-type]
    with _client(output) as client:
        first = run_job(client, [source], options, out)
        again = run_job(client, [source], options, out)  # resumes over what was written
    assert first.exit_code == 0 and again.exit_code == 0
    if destination.endswith(".jsonl"):
        (line,) = out.read_text(encoding="utf-8").splitlines()
        results = json.loads(line)["pages"][0]["results"]
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(out).to_pylist()
        results = [json.loads(row["result_json"]) for row in rows]
    (result,) = results
    assert result["status"] == "parse_error" and reason in result["error"]
    assert result["raw"].startswith("bad \ufffd") or result["raw"] == LONG_SMILES
