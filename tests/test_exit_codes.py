"""Exit codes and the summary line of real ``docvlm convert`` runs (a scripted engine), and
the one table of exit codes: ``docvlm.errors.ExitCode`` is what docs/errors.md prints."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from docvlm.archive.manifest import Manifest
from docvlm.cli import app
from docvlm.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]
SCRIPTED = ROOT / "tests" / "scripted_convert.py"
LINE = re.compile(
    r"(\d+) file\(s\) read in ([\d.]+) s \(([\d.]+) s loading the model\): (\d+) converted, "
    r"(\d+) partial, (\d+) failed, (\d+) skipped \(already done\), (\d+) ignored .*; "
    r"pages (\d+) done, (\d+) failed, \d+ reused; ([\d.]+) pages/s; .*; exit (\d+)(.*)$"
)


def _convert(
    folder: Path, out: Path, *extra: str, **environment: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPTED), "convert", str(folder), "-t", "caption", "-c", "x",
         "--device", "cpu", "--log-format", "rich", "-o", str(out), *extra],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT), DOCVLM_TEST_SECONDS="0", **environment),
    )  # fmt: skip


def _summary(run: subprocess.CompletedProcess[str]) -> re.Match[str]:
    found = [m for m in map(LINE.match, run.stderr.splitlines()) if m]
    assert len(found) == 1, run.stderr
    return found[0]


def _folder(tmp_path: Path, make_pdf: Callable[..., Path]) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.pdf", "b.pdf"):
        shutil.move(make_pdf(1, name=name), folder / name)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 cut short")
    return folder


def test_a_rerun_that_fails_nothing_says_why_it_exits_1(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    folder, out = _folder(tmp_path, make_pdf), tmp_path / "out.jsonl"
    first = _convert(folder, out, DOCVLM_TEST_LOAD_SECONDS="1.5")
    assert first.returncode == ExitCode.FAILED, first.stderr
    line = _summary(first)
    read, total, load, done, partial, failed, skipped, _i, pages, _f, rate, code, why = (
        line.groups()
    )
    assert (read, done, partial, failed, skipped, code) == ("3", "2", "0", "1", "0", "1")
    assert why == "" and pages == "2"
    reading = int(pages) / float(rate)  # pages/s is over the reading, after the load
    assert float(load) >= 1.5  # the model load is counted in the seconds
    assert abs(float(total) - float(load) - reading) < 0.1 + 0.05 * float(total)
    with Manifest(tmp_path / "out.jsonl.manifest.sqlite") as manifest:
        counts = manifest.counts()
    assert (counts.files_done, counts.files_failed) == (2, 1)

    again = _convert(folder, out)  # nothing new: the destination still lacks broken.pdf
    assert again.returncode == ExitCode.FAILED, again.stderr
    read, _t, _l, done, partial, failed, skipped, *_counts, code, why = _summary(again).groups()
    assert (read, done, failed, skipped, code) == ("0", "0", "0", "3", "1")
    assert (
        why == " (1 file(s) failed or partial in earlier runs; --retry-failed converts them again)"
    )

    retried = _convert(folder, out, "--retry-failed", "--log-format", "json")
    assert retried.returncode == ExitCode.FAILED  # still broken, now failed in this run
    (summary,) = [json.loads(x) for x in retried.stderr.splitlines() if '"summary"' in x]
    assert (summary["files_failed"], summary["files_failed_earlier"]) == (1, 0)


def test_a_run_with_every_file_converted_exits_0(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    folder = _folder(tmp_path, make_pdf)
    (folder / "broken.pdf").unlink()
    run = _convert(folder, tmp_path / "out/")
    assert run.returncode == ExitCode.OK, run.stderr
    assert _summary(run).group(4, 6, 12, 13) == ("2", "0", "0", "")


def test_a_bad_setting_or_passwords_file_is_a_usage_error(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    folder = _folder(tmp_path, make_pdf)
    bad = _convert(folder, tmp_path / "o.jsonl", DOCVLM_DPI="abc")
    assert bad.returncode == ExitCode.USAGE == 2
    assert bad.stderr.startswith("error: bad setting DOCVLM_DPI='abc': ")
    (tmp_path / "pw.json").write_text("[1, 2]")
    passwords = _convert(folder, tmp_path / "o.jsonl", "--passwords", str(tmp_path / "pw.json"))
    assert passwords.returncode == ExitCode.USAGE, passwords.stderr
    assert "pw.json" in passwords.stderr and not (tmp_path / "o.jsonl").exists()


def test_a_checkpoint_that_does_not_load_exits_5_in_every_command(tmp_path: Path) -> None:
    image = tmp_path / "page.png"
    Image.new("RGB", (64, 64), "white").save(image)
    missing = str(tmp_path / "no-such-checkpoint")
    runner = CliRunner()
    for command in (
        ["read-text", str(image), "-c", missing, "--device", "cpu"],
        ["convert", str(image), "-c", missing, "--device", "cpu", "--log-format", "json"],
    ):
        result = runner.invoke(app, command, env={"DOCVLM_OFFLINE": "1"})
        assert result.exit_code == ExitCode.CRASHED, (command, result.output)
        assert f"checkpoint directory '{missing}' does not exist" in result.output


def test_the_docs_table_of_exit_codes_is_the_code_table() -> None:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| (.+) \|$", text, re.M)
    assert rows == [(str(int(c)), c.name, c.meaning) for c in ExitCode]
    for page in ("cli.md", "etl.md"):  # they link to the one table, and print none of their own
        linked = (ROOT / "docs" / page).read_text(encoding="utf-8")
        assert "errors.md#exit-codes" in linked
        assert not re.search(r"^\| 5 \|", linked, re.M)
