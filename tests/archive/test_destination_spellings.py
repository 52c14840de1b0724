"""Two spellings of one destination are one destination: ``--out DIR`` and ``--out DIR/``
(a folder that does not exist yet), ``x.parquet`` and ``x.parquet/``, take one lock, so two
real ``docvlm convert`` processes on them are kept apart; a folder keeps one manifest
however it is spelled, so a second run resumes instead of reading everything again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from docvlm.archive.manifest import Manifest
from docvlm.archive.output import Output, open_sink
from docvlm.errors import ExitCode, SettingsError

ROOT = Path(__file__).resolve().parents[2]
SCRIPTED = ROOT / "tests" / "scripted_convert.py"


def _convert(folder: Path, out: str, *extra: str) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        str(SCRIPTED),
        "convert",
        str(folder),
        *("-t", "caption", "-c", "scripted", "--device", "cpu", "--log-format", "json"),
        *("-o", out, *extra),
    ]
    environment = dict(os.environ, PYTHONPATH=str(ROOT), DOCVLM_TEST_SECONDS="0.3")
    return subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _holding(out: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        path = Output.parse(out).lock_file
        if path.exists() and f'"pid": {process.pid}' in path.read_text():
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("the first run never took the lock")


def _inputs(tmp_path: Path, make_pdf: Callable[..., Path]) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.pdf", "b.pdf"):
        shutil.move(make_pdf(2, name=name), folder / name)
    return folder


@pytest.mark.parametrize(
    ("first", "second"),
    [("out", "out/"), ("x.parquet", "x.parquet/")],
)
def test_two_spellings_take_one_lock(
    first: str, second: str, tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    folder = _inputs(tmp_path, make_pdf)
    assert (  # (once x.parquet is written, x.parquet/ is refused: a file is in the way)
        Output.parse(str(tmp_path) + "/" + second).lock_file
        == Output.parse(str(tmp_path) + "/" + first).lock_file
    )
    running = _convert(folder, str(tmp_path) + "/" + first)
    _holding(str(tmp_path) + "/" + first, running)
    refused = _convert(folder, str(tmp_path) + "/" + second)
    _, refused_err = refused.communicate(timeout=60)
    assert refused.returncode == ExitCode.BUSY, refused_err
    assert running.poll() is None  # refused while the first still runs
    assert "another run is writing here" in refused_err
    _, stderr = running.communicate(timeout=120)
    assert running.returncode == ExitCode.OK, stderr


def test_a_folder_spelled_twice_keeps_one_manifest(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    folder = _inputs(tmp_path, make_pdf)
    plain, slashed = f"{tmp_path}/out", f"{tmp_path}/out/"
    assert (
        Output.parse(plain).manifest_file
        == Output.parse(slashed).manifest_file
        == tmp_path / "out/_manifest.sqlite"
    )
    running = _convert(folder, plain)
    _holding(plain, running)
    waiting = _convert(folder, slashed, "--wait")
    for process in (running, waiting):
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == ExitCode.OK, stderr
    # the second run found both files done in the first run's manifest
    summary = json.loads(stderr.splitlines()[-1])
    assert (summary["files_skipped"], summary["pages_done"]) == (2, 0), summary
    records = sorted((tmp_path / "out").glob("*/document.json"))
    assert len(records) == 2
    written = {path: path.stat().st_ino for path in records}
    with Manifest(tmp_path / "out" / "_manifest.sqlite") as manifest:
        counts = manifest.counts()
    assert (counts.files_done, counts.files_pending, counts.pages_done) == (2, 0, 4)
    assert not (tmp_path / "out.manifest.sqlite").exists()
    again = _convert(folder, plain)  # resumes: nothing to do, no record rewritten
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == ExitCode.OK, stderr
    assert {path: path.stat().st_ino for path in records} == written


def test_a_folder_where_a_file_of_that_name_is_says_so(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"PAR1")  # written earlier by --out x.parquet
    with pytest.raises(SettingsError, match=r"x\.parquet/: a file of that name is in the way"):
        open_sink(f"{tmp_path}/x.parquet/")
    assert (tmp_path / "x.parquet").read_bytes() == b"PAR1"
