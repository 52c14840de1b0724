"""Runs that collide or crash (issue 20): two real ``docvlm convert`` processes on one
destination, and a full disk (an injected ENOSPC in the sink, SQLITE_FULL in the
manifest), each ending in one line, its own exit code and a clean resume."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docvlm.archive.manifest import Manifest
from docvlm.archive.output import Output
from docvlm.archive.sinks import JsonlSink
from docvlm.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
SCRIPTED = ROOT / "tests" / "scripted_convert.py"


def _folder(path: Path, make_pdf: Callable[..., Path], names: list[str]) -> Path:
    path.mkdir()
    for name in names:
        shutil.move(make_pdf(2, name=name), path / name)
    return path


def _convert(folder: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(SCRIPTED),
        "convert",
        str(folder),
        *("-t", "caption", "-c", "scripted", "--device", "cpu", "--log-format", "json"),
        *("-o", str(out), *extra),
    ]


def _start(command: list[str]) -> subprocess.Popen[str]:
    environment = dict(os.environ, PYTHONPATH=str(ROOT), DOCVLM_TEST_SECONDS="0.3")
    return subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _holding(out: Path, process: subprocess.Popen[str]) -> None:
    """Wait until ``process`` holds the lock of ``out`` (its pid is in the lock file)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        path = Output.parse(out).lock_file
        if path.exists() and f'"pid": {process.pid}' in path.read_text():
            return
        time.sleep(0.02)
    raise AssertionError("the first run never took the lock")


def _sources(out: Path) -> Counter[str]:
    return Counter(json.loads(line)["source"] for line in out.read_text().splitlines())


@pytest.mark.parametrize("same_inputs", [False, True])
def test_two_runs_on_one_destination(
    same_inputs: bool, tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    first = _folder(tmp_path / "first", make_pdf, ["a.pdf", "b.pdf"])
    second = first if same_inputs else _folder(tmp_path / "second", make_pdf, ["c.pdf"])
    out = tmp_path / "out.jsonl"
    running = _start(_convert(first, out))
    _holding(out, running)
    started = time.monotonic()
    refused = _start(_convert(second, out))
    _, refused_err = refused.communicate(timeout=60)
    assert refused.returncode == ExitCode.BUSY, refused_err
    assert time.monotonic() - started < 10 and running.poll() is None  # at once
    (line,) = refused_err.strip().splitlines()
    assert line.startswith(f"error: {out}: another run is writing here (pid {running.pid} on ")
    assert "started 20" in line and "--wait" in line
    waiting = _start(_convert(second, out, "--wait"))
    for process in (running, waiting):
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == ExitCode.OK, stderr
        assert "Traceback" not in stderr
    expected = sorted({str(p) for p in [*first.iterdir(), *second.iterdir()]})
    assert sorted(_sources(out)) == expected and set(_sources(out).values()) == {1}
    with Manifest(tmp_path / "out.jsonl.manifest.sqlite") as manifest:
        counts = manifest.counts()
    assert (counts.files_done, counts.files_pending) == (len(expected), 0)


def _scripted_app(monkeypatch: pytest.MonkeyPatch) -> object:
    sys.path.insert(0, str(ROOT / "tests"))
    import scripted_convert

    import docvlm.client

    monkeypatch.setattr(docvlm.client, "DocVLM", scripted_convert.ScriptedDocVLM)
    from docvlm.cli import app

    return app


def _enospc(calls: int) -> Callable[..., str]:
    """A ``JsonlSink.commit`` that finds the disk full at its ``calls``-th call."""
    original = JsonlSink.commit
    count = [0]

    def commit(self: JsonlSink) -> str:
        count[0] += 1
        if count[0] == calls:
            self._file.write(b'{"source": "half a line')  # what a full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self)

    return commit


def _sqlite_full(calls: int) -> Callable[..., None]:
    original = Manifest.commit_written
    count = [0]

    def commit_written(self: Manifest, *args: object) -> None:
        count[0] += 1
        if count[0] == calls:
            raise sqlite3.OperationalError("database or disk is full")
        original(self, *args)  # type: ignore[arg-type]

    return commit_written


@pytest.mark.parametrize(("target", "fault"), [("sink", 2), ("sink", 4), ("manifest", 3)])
def test_a_full_disk_is_one_line_exit_5_and_a_clean_resume(
    target: str,
    fault: int,
    tmp_path: Path,
    make_pdf: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = _folder(tmp_path / "in", make_pdf, ["a.pdf", "b.pdf", "c.pdf", "d.pdf"])
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n garbage")
    out = tmp_path / "out.jsonl"
    app = _scripted_app(monkeypatch)
    command = ["convert", str(folder), "-t", "caption", "-c", "x", "--log-format", "json"]
    with pytest.MonkeyPatch.context() as faults:
        if target == "sink":
            faults.setattr(JsonlSink, "commit", _enospc(fault))
        else:
            faults.setattr(Manifest, "commit_written", _sqlite_full(fault))
        crashed = CliRunner().invoke(app, [*command, "-o", str(out)])  # type: ignore[arg-type]
    assert crashed.exit_code == ExitCode.CRASHED, crashed.output
    errors = [line for line in crashed.stderr.splitlines() if not line.startswith("{")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {out}: no space left on device")
    assert "run the same command again to resume" in errors[0]
    assert "Traceback" not in crashed.output
    # the faults are undone: space freed
    resumed = CliRunner().invoke(app, [*command, "-o", str(out)])  # type: ignore[arg-type]
    assert resumed.exit_code == 1, resumed.output  # broken.pdf failed; the rest converted
    assert _sources(out) == Counter(str(p) for p in folder.iterdir())  # none lost or doubled
