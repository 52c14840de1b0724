from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from docvlm.archive.manifest import Manifest
from docvlm.archive.output import Output
from docvlm.archive.records import JobKey, ReadKey, build_document, content_hash
from docvlm.results import Page, TextResult
from parsers import Box


def _key(**changes: object) -> JobKey:
    read = {
        "task": "text",
        "checkpoint": "google/paligemma2-3b-mix-448",
        "prompt": "ocr",
        "resolution": 448,
        "max_new_tokens": 2048,
    }
    job: dict[str, object] = {"dpi": 150}
    for name, value in changes.items():
        (read if name in read else job)[name] = value
    return JobKey(reads=(ReadKey.model_validate(read),), **job)  # type: ignore[arg-type]


def test_everything_that_changes_an_answer_changes_the_key() -> None:
    base = _key().fingerprint()
    assert _key().fingerprint() == base
    for change in (
        {"checkpoint": "other"},
        {"prompt": "ocr\n"},
        {"resolution": 896},
        {"max_new_tokens": 2047},
        {"dpi": 151},
        {"pages": "1-2"},
        {"regions": "layout"},
    ):
        assert _key(**change).fingerprint() != base, change


def test_manifest_lives_beside_the_destination(tmp_path: Path) -> None:
    assert Output.parse(tmp_path / "x.jsonl").manifest_file == tmp_path / "x.jsonl.manifest.sqlite"
    assert (
        Output.parse(f"{tmp_path}/parts.parquet/").manifest_file
        == tmp_path / "parts.parquet/_manifest.sqlite"
    )


def test_pages_documents_and_cursor_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    result = TextResult(
        source="a.pdf",
        page=1,
        box=Box(x0=0, y0=0, x1=9, y1=9),
        checkpoint="c",
        prompt="ocr",
        raw="x",
    )
    page = Page(number=1, status="ok", results=(result,))
    with Manifest(path) as manifest:
        manifest.record_page("h1", "job", page)
        manifest.record_page("h1", "job", Page(number=2, status="error", error="bad page"))
        with pytest.raises(sqlite3.IntegrityError):  # a page is never recorded twice
            manifest.record_page("h1", "job", page)
        manifest.start("a.pdf", "h1", "job")
        manifest.start("b.pdf", "h2", "job")
        document = build_document("a.pdf", [page], sha256="h1")
        manifest.commit_written([(document, "job", None)], "120")
    with Manifest(path) as manifest:
        assert manifest.finished_pages("h1", "job") == {
            1: page,
            2: Page(number=2, status="error", error="bad page"),
        }
        assert manifest.finished_pages("h1", "other job") == {}
        assert manifest.written_status("a.pdf", "job", "h1") == "success"
        assert manifest.written_status("a.pdf", "job", "changed") is None
        assert manifest.written_content("h1", "job") == ("a.pdf", None)
        counts = manifest.counts()
        assert (
            counts.files_done,
            counts.files_pending,
            counts.pages_done,
            counts.pages_failed,
        ) == (
            1,
            1,
            1,
            1,
        )
        assert counts.cursor == "120"
        mode = manifest._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        manifest.reset()
        assert manifest.cursor() is None and manifest.finished_pages("h1", "job") == {}


def test_hashes_are_reused_only_for_unchanged_files(tmp_path: Path) -> None:
    file = tmp_path / "scan.pdf"
    file.write_bytes(b"%PDF-1.4 one")
    with Manifest(tmp_path / "m.sqlite") as manifest:
        assert manifest.known_hash(file) is None
        manifest.remember_hash(file, content_hash(file))
        assert manifest.known_hash(file) == content_hash(b"%PDF-1.4 one")
        file.write_bytes(b"%PDF-1.4 two")
        os.utime(file, ns=(1, 1))
        assert manifest.known_hash(file) is None
