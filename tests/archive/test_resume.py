"""``kill -9`` at several moments of a real ``docvlm convert``, then a rerun: every file is
in the output exactly once, every record is valid, and no page was read twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from docvlm import json_schema
from docvlm.archive.output import Output

ROOT = Path(__file__).resolve().parents[2]
PAGES = {"a.pdf": 3, "b.pdf": 2, "c.pdf": 4}
# a copy of a.pdf under another name, and a file that is not a PDF
NAMES = sorted([*PAGES, "copy-of-a.pdf", "broken.pdf"])


@pytest.fixture()
def folder(tmp_path: Path, make_pdf: Callable[..., Path]) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, pages in PAGES.items():
        shutil.move(make_pdf(pages, name=name), folder / name)
    shutil.copy(folder / "a.pdf", folder / "copy-of-a.pdf")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not a whole PDF")
    return folder


def _command(folder: Path, checkpoint: Path, destination: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "docvlm.cli",
        "convert",
        str(folder),
        "--task",
        "caption",  # one request per page: the kills land between pages
        "-c",
        str(checkpoint),
        "--max-new-tokens",
        "3",
        "--dpi",
        "36",
        "--device",
        "cpu",
        "--log-format",
        "json",
        "-o",
        str(destination),
    ]


def _pages_done(destination: Path) -> int:
    path = Output.parse(destination).manifest_file
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute("SELECT count(*) FROM pages").fetchone()[0])
    except sqlite3.Error:
        return 0


def _run_and_kill(command: list[str], until: Callable[[], bool], limit: float = 60) -> None:
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + limit
    while not until() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _finish(command: list[str]) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)


def _check_manifest(destination: Path) -> None:
    with sqlite3.connect(Output.parse(destination).manifest_file) as db:
        pages = db.execute("SELECT sha256, page FROM pages").fetchall()
        states = db.execute("SELECT source, state FROM documents").fetchall()
    # a.pdf and its copy share their pages: 3 + 2 + 4 pages, each read and recorded once
    assert len(pages) == len(set(pages)) == sum(PAGES.values())
    assert sorted(Path(s).name for s, state in states if state == "written") == NAMES


@pytest.mark.slow
def test_kill_9_at_any_moment_then_resume(
    folder: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    command = _command(folder, tiny_checkpoint, out)
    moments = [
        lambda: False,  # killed while loading (the limit below)
        lambda: _pages_done(out) >= 1,  # in the middle of the first document
        lambda: out.exists() and out.stat().st_size > 0,  # just after a document was written
    ]
    for index, moment in enumerate(moments):
        _run_and_kill(command, moment, limit=1.5 if index == 0 else 60)
    finished = _finish(command)
    assert finished.returncode == 1, finished.stderr  # broken.pdf failed, the rest converted
    summary = json.loads(finished.stderr.strip().splitlines()[-1])
    assert summary["event"] == "summary" and summary["exit_code"] == 1
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(Path(r["source"]).name for r in records) == NAMES  # each exactly once
    for record in records:
        jsonschema.validate(record, json_schema("document"))
        name = Path(record["source"]).name
        expected = PAGES.get(name.removeprefix("copy-of-"), 0)
        assert [p["number"] for p in record["pages"]] == list(range(1, expected + 1))
    _check_manifest(out)
    status = _finish([*command[:3], "status", str(out)])
    assert "files: 4 done, 0 partial, 1 failed, 0 pending" in status.stdout


@pytest.mark.slow
def test_kill_9_then_resume_into_parquet(
    folder: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    pandas = pytest.importorskip("pandas")
    out = tmp_path / "out.parquet"
    command = _command(folder, tiny_checkpoint, out)
    _run_and_kill(command, lambda: _pages_done(out) >= 4)
    finished = _finish(command)
    assert finished.returncode == 1, finished.stderr
    frame = pandas.read_parquet(out)
    by_name = frame.assign(name=frame["source"].map(lambda s: Path(s).name))
    assert sorted(set(by_name["name"])) == NAMES
    pages = by_name.dropna(subset=["page"]).groupby("name")["page"].apply(sorted).to_dict()
    for name, expected in PAGES.items():
        assert pages[name] == list(range(1, expected + 1))  # no page missing or doubled
        assert pages[f"copy-of-{name}"] == pages[name] if name == "a.pdf" else True
    assert by_name.loc[by_name["name"] == "broken.pdf", "status"].tolist() == ["failure"]
    _check_manifest(out)
