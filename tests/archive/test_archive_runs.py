"""Archive runs that lose nothing and double nothing (issue 20): late copies, sources
rejected before hashing, README files in archives, --retry-failed, and the progress."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from docvlm import DocVLM, Settings
from docvlm.archive.manifest import Manifest
from docvlm.archive.output import Output
from docvlm.archive.pipeline import Options
from docvlm.archive.progress import JsonLog, RichProgress
from docvlm.archive.records import content_hash
from docvlm.archive.runner import Summary, run_job
from docvlm.errors import ExitCode
from docvlm.testing import ScriptedEngine

ENCRYPTED = "pdfs/encrypted/pypdf_r2-user-password.pdf"  # password: asdfzxcv


def _engine() -> ScriptedEngine:
    return ScriptedEngine(lambda r: "a caption", resolution=224)


def _run(
    sources: Sequence[Path], out: Path, engine: ScriptedEngine | None = None, **options: Any
) -> Summary:
    engine = engine or _engine()
    client = DocVLM(Settings(dpi=36), engine_factory=lambda c, s: engine, checkpoint="scripted")
    passwords = options.pop("passwords", {})
    with client:
        return run_job(
            client,
            sources,
            Options(tasks=("caption",), dpi=36, passwords=passwords),
            out,
            **options,
        )


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def _names(out: Path) -> Counter[str]:
    return Counter(Path(r["source"]).name for r in _records(out))


@pytest.fixture()
def folder(tmp_path: Path, make_pdf: Callable[..., Path]) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.move(make_pdf(2, name="a.pdf"), folder / "a.pdf")
    shutil.move(make_pdf(1, name="b.pdf"), folder / "b.pdf")
    return folder


def test_a_copy_added_later_gets_its_own_record(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert _run([folder], out).exit_code == ExitCode.OK
    shutil.copy(folder / "a.pdf", folder / "c.pdf")
    engine = _engine()
    summary = _run([folder], out, engine)
    assert summary.exit_code == ExitCode.OK and summary.files_skipped == 2
    assert engine.requests == []  # the copy's pages come from the manifest, not the model
    assert _names(out) == {"a.pdf": 1, "b.pdf": 1, "c.pdf": 1}
    by_name = {Path(r["source"]).name: r for r in _records(out)}
    original, copy = by_name["a.pdf"], by_name["c.pdf"]
    assert copy["sha256"] == original["sha256"] == content_hash(folder / "c.pdf")
    assert copy["pages"][0]["results"][0]["source"] == str(folder / "c.pdf")
    assert [p["number"] for p in copy["pages"]] == [1, 2]
    with Manifest(Output.parse(out).manifest_file) as manifest:
        counts = manifest.counts()
    assert (counts.files_done, counts.files_pending) == (3, 0)


class _KillAfterFirst:
    """Stands in for ``kill -9`` right after the first record was committed."""

    def started(self, total_files: int | None) -> None:
        pass

    def ignored(self, name: str, why: str) -> None:
        pass

    def document(self, document: object, *, skipped: bool, pages: int) -> None:
        raise KeyboardInterrupt

    def finished(self, summary: Summary) -> None:
        pass


def test_a_copy_is_written_when_a_kill_fell_between_it_and_its_original(
    folder: Path, tmp_path: Path
) -> None:
    shutil.copy(folder / "a.pdf", folder / "copy.pdf")
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        _run([folder / "a.pdf", folder / "copy.pdf"], out, observer=_KillAfterFirst())
    assert _names(out) == {"a.pdf": 1}
    summary = _run([folder / "a.pdf", folder / "copy.pdf"], out)
    assert summary.files_skipped == 1 and summary.files_done == 1
    assert _names(out) == {"a.pdf": 1, "copy.pdf": 1}


def test_sources_rejected_before_hashing_are_recorded_once(folder: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(folder / "letter.pdf", "w") as odt:  # an ODT renamed .pdf
        odt.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        odt.writestr("content.xml", "<office:document-content/>")
    (folder / "damaged.zip").write_bytes(b"PK\x03\x04 this is not a whole zip")
    missing = tmp_path / "gone.pdf"
    out = tmp_path / "out.jsonl"
    for _ in range(3):
        summary = _run([folder, missing], out)
        assert summary.exit_code == ExitCode.FAILED
    names = _names(out)
    assert names == {"a.pdf": 1, "b.pdf": 1, "letter.pdf": 1, "damaged.zip": 1, "gone.pdf": 1}
    by_name = {Path(r["source"]).name: r for r in _records(out)}
    assert by_name["letter.pdf"]["sha256"] == content_hash(folder / "letter.pdf")
    assert "OpenDocument" in by_name["letter.pdf"]["error"]
    assert by_name["gone.pdf"]["sha256"] is None and by_name["gone.pdf"]["status"] == "failure"
    assert summary.files_skipped == 5 and summary.files_failed == 0


def test_a_readme_inside_a_zip_is_skipped_as_in_a_folder(folder: Path, tmp_path: Path) -> None:
    archive = tmp_path / "scans.zip"
    with zipfile.ZipFile(archive, "w") as scans:
        scans.write(folder / "b.pdf", "b.pdf")
        scans.writestr("README.txt", "Scanned in 2019 by the county archive.\n")
    (folder / "README.txt").write_text("Scanned in 2019.\n")
    out = tmp_path / "out.jsonl"
    summary = _run([archive, folder], out)
    assert summary.exit_code == ExitCode.OK and summary.files_failed == 0
    assert summary.files_ignored == 2  # the one in the zip and the one in the folder
    assert sorted(r["source"] for r in _records(out)) == sorted(
        [f"{archive}!b.pdf", str(folder / "a.pdf"), str(folder / "b.pdf")]
    )


@pytest.mark.parametrize("kind", ["out.jsonl", "out.parquet", "parts.parquet/"])
def test_retry_failed_with_a_password_replaces_the_record(
    kind: str, folder: Path, tmp_path: Path, corpus: Path
) -> None:
    encrypted = corpus / ENCRYPTED
    if not encrypted.exists():
        pytest.skip("the encrypted PDF is not in this corpus")
    shutil.copy(encrypted, folder / "secret.pdf")
    out = tmp_path / kind
    first = _run([folder], out)
    assert first.exit_code == ExitCode.FAILED and first.files_failed == 1
    assert _run([folder], out, retry_failed=True).files_failed == 1  # still no password
    engine = _engine()
    passwords = {"secret.pdf": "asdfzxcv"}
    summary = _run([folder], out, engine, retry_failed=True, passwords=passwords)
    assert summary.exit_code == ExitCode.OK and summary.files_done == 1
    assert summary.files_skipped == 2 and len(engine.requests) == 1  # only the retried file
    records = _load(out)
    assert Counter(Path(r["source"]).name for r in records) == Counter(
        {"a.pdf": 1, "b.pdf": 1, "secret.pdf": 1}
    )
    secret = next(r for r in records if r["source"].endswith("secret.pdf"))
    assert secret["status"] == "success"
    assert _run([folder], out).files_skipped == 3  # and a plain rerun keeps it


def _load(out: Path) -> list[dict[str, Any]]:
    """One dict per document, from any sink (Parquet rows grouped by source)."""
    if out.suffix == ".jsonl":
        return _records(out)
    import pyarrow.parquet as pq

    rows = pq.read_table(out).to_pylist()
    documents: dict[str, dict[str, Any]] = {}
    for row in rows:
        found = documents.setdefault(row["document_id"], {"source": row["source"]})
        assert found["source"] == row["source"]
        found["status"] = row["document_status"]
    return list(documents.values())


def test_progress_counts_only_files_to_convert(folder: Path, tmp_path: Path) -> None:
    (folder / "README.txt").write_text("not a scan\n")
    out = tmp_path / "out.jsonl"
    _run([folder], out)
    shutil.copy(folder / "a.pdf", folder / "new.pdf")
    bar = RichProgress(Console(file=io.StringIO(), width=200))
    _run([folder], out, observer=bar)
    task = bar._bar.tasks[0]
    assert (task.total, task.completed) == (1, 1)  # new.pdf; not a, b (done) nor the README


def test_a_documents_seconds_never_exceed_the_run(folder: Path, tmp_path: Path) -> None:
    import time

    stream = io.StringIO()
    log = JsonLog(stream)
    time.sleep(0.5)  # the model loading, before the run starts
    _run([folder], tmp_path / "out.jsonl", observer=log)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    run_seconds = events[-1]["seconds"]
    documents = [e["seconds"] for e in events if e["event"] == "document"]
    assert documents and sum(documents) <= run_seconds + 0.01
