"""The kill -9 soak (issue 20): a real ``docvlm convert`` (scripted engine) killed at eight
moments over good and bad files, then run to the end: every file has exactly one record in
JSON Lines and in Parquet, each record valid under ``docvlm schema document``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from docvlm import json_schema
from docvlm.archive.output import Output
from docvlm.archive.parquet import row_json_schema

ROOT = Path(__file__).resolve().parents[2]
SCRIPTED = ROOT / "tests" / "scripted_convert.py"
PAGES = {"a.pdf": 4, "b.pdf": 3, "c.pdf": 4, "d.pdf": 2}  # room for 8 kills, each mid-run


@pytest.fixture()
def folder(tmp_path: Path, make_pdf: Callable[..., Path]) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, pages in PAGES.items():
        shutil.move(make_pdf(pages, name=name), folder / name)
    shutil.copy(folder / "a.pdf", folder / "copy-of-a.pdf")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not a whole PDF")
    with zipfile.ZipFile(folder / "letter.pdf", "w") as odt:  # an ODT renamed .pdf
        odt.writestr("mimetype", "application/vnd.oasis.opendocument.text")
    (folder / "damaged.zip").write_bytes(b"PK\x03\x04 not a whole zip")
    (folder / "README.txt").write_text("not a scan\n")
    return folder


def _command(folder: Path, out: Path) -> list[str]:
    options = ("-t", "caption", "-c", "scripted", "--device", "cpu", "--log-format", "json")
    return [sys.executable, str(SCRIPTED), "convert", str(folder), *options, "-o", str(out)]


def _environment() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), DOCVLM_TEST_SECONDS="0.15")


def _count(out: Path, sql: str) -> int:
    path = Output.parse(out).manifest_file
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0


PAGES_SQL = "SELECT count(*) FROM pages"
WRITTEN_SQL = "SELECT count(*) FROM documents WHERE state = 'written'"
#: When each run is killed, counted from where that run started: seconds while it starts,
#: or pages read / documents written since.
MOMENTS = [
    ("seconds", 0.3),
    (PAGES_SQL, 1),
    (WRITTEN_SQL, 1),
    ("seconds", 0.8),
    (PAGES_SQL, 1),
    (PAGES_SQL, 2),
    (WRITTEN_SQL, 1),
    (PAGES_SQL, 1),
]


def _run_and_kill(command: list[str], out: Path, what: str, amount: float) -> bool:
    """Start a run, kill -9 it at the moment; whether it was still running then."""
    before = 0 if what == "seconds" else _count(out, what)
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while process.poll() is None and time.monotonic() - started < 30:
        if what == "seconds":
            if time.monotonic() - started >= amount:
                break
        elif _count(out, what) - before >= amount:
            break
        time.sleep(0.01)
    alive = process.poll() is None
    if alive:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return alive


def _soak(folder: Path, out: Path) -> None:
    command = _command(folder, out)
    moments = MOMENTS
    if out.suffix == ".parquet":  # documents are committed with whole parts, at the end
        moments = [(PAGES_SQL if what == WRITTEN_SQL else what, n) for what, n in MOMENTS]
    kills = sum(_run_and_kill(command, out, what, amount) for what, amount in moments)
    assert kills == len(MOMENTS) == 8  # every kill landed in a running conversion
    finished = subprocess.run(
        command, env=_environment(), capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 1, finished.stderr  # the bad files failed, the rest converted
    assert "Traceback" not in finished.stderr


def _expected(folder: Path) -> Counter[str]:
    return Counter(str(p) for p in folder.iterdir() if p.name != "README.txt")


@pytest.mark.slow
def test_kill_9_soak_jsonl(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    _soak(folder, out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert Counter(r["source"] for r in records) == _expected(folder)  # each exactly once
    schema = json_schema("document")
    for record in records:
        jsonschema.validate(record, schema)
        expected = PAGES.get(Path(record["source"]).name.removeprefix("copy-of-"), 0)
        assert [p["number"] for p in record["pages"]] == list(range(1, expected + 1))
        assert record["status"] == ("success" if expected else "failure")


@pytest.mark.slow
def test_kill_9_soak_parquet(folder: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "out.parquet"
    _soak(folder, out)
    rows = pq.read_table(out).to_pylist()
    schema = row_json_schema()
    for row in rows:
        jsonschema.validate(row, schema)
    documents = {(r["document_id"], r["source"]) for r in rows}
    assert Counter(source for _, source in documents) == _expected(folder)
    pages = Counter((r["source"], r["page"]) for r in rows)
    assert set(pages.values()) == {1}  # one task: one row per page, none doubled
    for source in _expected(folder):
        expected = PAGES.get(Path(source).name.removeprefix("copy-of-"), 0)
        numbers = sorted(page for s, page in pages if s == source and page is not None)
        assert numbers == list(range(1, expected + 1))
