"""Corrections made safely: a save waits for no conversion and never breaks one (423 while
one writes the output; a live run's staging folder is left alone), a crash while a
document's folder is replaced loses nothing, staging folders are not read as records, a
format that cannot be rewritten keeps its file, and the editors refuse cross-site writes."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
import httpx
from editable import LINES, editable_output

from docvlm import Settings
from docvlm.archive.edits import Correction
from docvlm.archive.output import Output
from docvlm.archive.sinks import FolderSink, folder_name
from docvlm.document import Document
from docvlm.server import viewer_app

SETTINGS = Settings(device="cpu", render_timeout=None)
FIXED = "Scheme 1. The product."


def record(out: Path) -> Document:
    """The one record of ``out``, its staging folders (if any) not read."""
    ((_, document),) = Output.existing(out).stored()
    return document


def post(out: Path, url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    app = viewer_app(out, SETTINGS, edit=True)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://docvlm") as http:
            return await http.post(url, content=json.dumps(body).encode(), headers=headers)

    return asyncio.run(go())


def line_edit(out: Path) -> dict[str, Any]:
    return {"sha256": record(out).sha256, "page": 1, "result": 0, "line": 0, "text": FIXED}


JSON = {"content-type": "application/json"}


def test_a_save_while_a_conversion_writes_the_output_answers_423(
    corpus: Path, tmp_path: Path
) -> None:
    out = editable_output(corpus, tmp_path)
    with Output.parse(out).lock():  # a conversion writing OUT
        busy = post(out, "/v1/corrections", line_edit(out), **JSON)
    assert busy.status_code == 423
    assert busy.json()["detail"] == f"a conversion is writing {out}; save again when it ends"
    assert record(out).pages[0].results[0].lines[0].text == LINES[0]  # type: ignore[union-attr]
    assert Output.existing(out).corrections().entries == []
    after = post(out, "/v1/corrections", line_edit(out), **JSON)  # the run ended
    assert after.status_code == 200 and after.json()["version"] == 1


def test_a_save_leaves_a_live_runs_staging_folder_alone(corpus: Path, tmp_path: Path) -> None:
    out = editable_output(corpus, tmp_path)
    staging = out / ".tmp-other.pdf"
    staging.mkdir()
    (staging / "document.json").write_text('{"source": "other.pd', encoding="utf-8")
    Output.existing(out).corrections().apply(Correction(**line_edit(out)))
    assert (staging / "document.json").read_text(encoding="utf-8") == '{"source": "other.pd'
    assert record(out).pages[0].results[0].lines[0].text == FIXED  # type: ignore[union-attr]


def test_a_crash_while_a_folder_is_replaced_loses_nothing(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = editable_output(corpus, tmp_path)
    rename = Path.rename

    def crash(self: Path, target: Any) -> Any:  # dies before staging is renamed into place
        if self.name.startswith(".tmp-"):
            raise KeyboardInterrupt
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        Output.existing(out).corrections().apply(Correction(**line_edit(out)))
    monkeypatch.setattr(Path, "rename", rename)
    FolderSink(out)  # the next run starts: staging is dropped, the record put back
    ((folder, document),) = Output.existing(out).stored()
    assert folder is not None and not folder.name.startswith(".")
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    # the record as it was, healed from the log on the next read
    assert document.pages[0].results[0].lines[0].text == LINES[0]  # type: ignore[union-attr]
    Output.existing(out).corrections().apply(Correction(**line_edit(out), reviewed=None))
    assert record(out).pages[0].results[0].lines[0].text == FIXED  # type: ignore[union-attr]


def test_a_staging_folder_is_not_read_as_a_record(corpus: Path, tmp_path: Path) -> None:
    out = editable_output(corpus, tmp_path)
    (out / ".tmp-half.png").mkdir()
    (out / ".tmp-half.png" / "document.json").write_text('{"source": "ha', encoding="utf-8")
    assert [d.source for _, d in Output.existing(out).stored()] == [record(out).source]
    assert Output.existing(out).corrections().apply(Correction(**line_edit(out))).version == 1


def _pdf_text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout


def test_a_correction_keeps_the_pdf_when_the_original_is_gone(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("pikepdf")
    out = editable_output(corpus, tmp_path, formats=("pdf",))
    (pdf,) = out.glob("*/document.pdf")
    before = pdf.read_bytes()
    assert "prodnct" in _pdf_text(pdf)
    (tmp_path / "page.png").unlink()  # the original moved away
    Output.existing(out).corrections().apply(Correction(**line_edit(out)))
    (pdf,) = out.glob("*/document.pdf")
    assert pdf.read_bytes() == before and "prodnct" in _pdf_text(pdf)
    errors = (pdf.parent / "formats-errors.txt").read_text(encoding="utf-8")
    assert errors.startswith("pdf: ") and "it holds the uncorrected text" in errors
    assert record(out).pages[0].results[0].lines[0].text == FIXED  # type: ignore[union-attr]


def test_a_correction_finds_a_relative_original_under_root(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pikepdf")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / editable_output(corpus, Path("scans"), formats=("pdf",))
    assert record(out).source == "scans/page.png"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the viewer started in another folder
    Output.existing(out).corrections(root=tmp_path).apply(Correction(**line_edit(out)))
    (pdf,) = out.glob("*/document.pdf")
    assert FIXED in _pdf_text(pdf) and not (pdf.parent / "formats-errors.txt").exists()


def test_a_records_source_outside_root_is_never_opened(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record is data: a source of ``../x`` (or a link out) names a file outside root,
    which a save must not read into the searchable PDF it writes again."""
    pytest.importorskip("pikepdf")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / editable_output(corpus, Path("scans"), formats=("pdf",))
    (file,) = out.glob("*/document.json")
    outside = record(out).model_copy(update={"source": "../scans/page.png"})
    file.write_text(outside.model_dump_json(), encoding="utf-8")
    file.parent.rename(out / folder_name(outside.source))  # as a run would have named it
    (tmp_path / "root").mkdir()  # ../scans/page.png from here is the scan: outside root
    Output.existing(out).corrections(root=tmp_path / "root").apply(Correction(**line_edit(out)))
    (pdf,) = out.glob("*/document.pdf")
    assert FIXED not in _pdf_text(pdf)  # the old PDF kept, its original not read
    assert "document.pdf" in (pdf.parent / "formats-errors.txt").read_text()
    assert record(out).pages[0].results[0].lines[0].text == FIXED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 415, "Content-Type: application/json"),
        ({"content-type": "text/plain"}, 415, "Content-Type: application/json"),
        ({**JSON, "origin": "https://evil.example"}, 403, "another origin"),
        ({**JSON, "origin": "http://docvlm:8080"}, 403, "another origin"),
        ({**JSON, "sec-fetch-site": "cross-site"}, 403, "another site"),
    ],
)
def test_a_cross_site_write_is_refused(
    corpus: Path, tmp_path: Path, headers: dict[str, str], status: int, reason: str
) -> None:
    out = editable_output(corpus, tmp_path)
    answer = post(out, "/v1/corrections", line_edit(out), **headers)
    assert answer.status_code == status and reason in answer.json()["detail"]
    preview = post(out, "/v1/preview", {"task": "molecule", "value": "CCO"}, **headers)
    assert preview.status_code == status
    assert Output.existing(out).corrections().entries == []
    same = {**JSON, "origin": "http://docvlm", "sec-fetch-site": "same-origin"}
    assert post(out, "/v1/corrections", line_edit(out), **same).status_code == 200
