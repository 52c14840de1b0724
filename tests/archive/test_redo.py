"""``docvlm convert --redo`` with only some of the files (docs/etl.md): a JSON Lines or
Parquet destination starts over, so the records of the other files are dropped; an output
folder's manifest forgets them while their folders stay on disk; the run says which in one
warning line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from answered_convert import convert
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from docvlm.archive.output import Output
from docvlm.cli import app


def _scans(folder: Path) -> list[Path]:
    folder.mkdir()
    made = []
    for name in ("a.png", "b.png"):
        image = Image.new("RGB", (300, 200), "white")
        ImageDraw.Draw(image).text((20, 80), f"page {name}", fill="black")
        image.save(folder / name)
        made.append(folder / name)
    return made


@pytest.mark.parametrize("destination", ["out.jsonl", "out.parquet", "out/"])
def test_redo_with_some_files_says_and_does_what_the_docs_say(
    destination: str, tmp_path: Path
) -> None:
    if "parquet" in destination:
        pytest.importorskip("pyarrow")
    a, b = _scans(tmp_path / "scans")
    out = f"{tmp_path}/{destination}"
    first = convert([str(a), str(b), "--out", out, "--redo"], {}, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "--redo" not in first.stderr  # nothing was there to start over
    again = convert([str(a), "--out", out, "--redo"], {}, tmp_path)
    assert again.returncode == 0, again.stderr
    warnings = [line for line in again.stderr.splitlines() if line.startswith("warning: --redo")]
    where = Output.parse(out)
    assert len(warnings) == 1 and f"{where} starts over" in warnings[0]
    sources = sorted(d.source for d in Output.existing(out).records())
    status = CliRunner().invoke(app, ["status", out, "--json"])
    assert json.loads(status.stdout)["files_done"] == 1  # the manifest: this run's only
    if destination.endswith("/"):
        assert "forgets its 2 earlier record(s)" in warnings[0]
        assert sources == [str(a), str(b)]  # b's folder stays on disk
        rerun = convert([str(a), str(b), "--out", out], {}, tmp_path)
        events = [json.loads(line) for line in rerun.stderr.splitlines()]
        summary = next(e for e in events if e["event"] == "summary")
        assert (summary["files_done"], summary["files_skipped"]) == (1, 1)  # b read again
        assert sorted(d.source for d in Output.existing(out).records()) == [str(a), str(b)]
    else:
        assert "its 2 earlier record(s) are replaced" in warnings[0]
        assert sources == [str(a)]  # b's record is dropped


def test_convert_help_says_what_redo_does_to_each_destination() -> None:
    result = CliRunner().invoke(app, ["convert", "--help"], env={"COLUMNS": "300"})
    text = " ".join(result.output.replace("│", " ").split())
    assert "dropped from x.jsonl or x.parquet (the file starts over)" in text
    assert "their document folders stay on disk but leave the manifest" in text
