"""``--formats`` / ``formats=[...]``: an output folder holds, per document, the files an
archive is made of, written by the runner beside document.json, resumed like it, and each
checked with its own tool (the XSDs, pdftotext, docling-core)."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from schemas import validate
from scripted_ocr import LINES, factory
from typer.testing import CliRunner

from docvlm import Document, DocVLM, Settings
from docvlm.cli import app
from docvlm.formats.files import FORMATS, write_formats

ALL = ["pdf", "alto", "page", "hocr", "docling", "md", "txt"]


def _inputs(corpus: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(corpus / "pdfs" / "good_scans" / "pikepdf_congress.pdf", folder / "congress.pdf")
    with zipfile.ZipFile(folder / "scans.zip", "w") as archive:
        archive.write(corpus / "pdfs" / "good_scans" / "ocrmypdf_linn.png", "linn.png")
    return folder


def _convert(folder: Path, out: Path) -> list[Document]:
    with DocVLM(Settings(device="cpu", dpi=72), engine_factory=factory) as client:
        return list(client.convert_many([folder], tasks=["text"], out=f"{out}/", formats=ALL))


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
def test_every_format_is_written_per_document_and_resumed(corpus: Path, tmp_path: Path) -> None:
    from docling_core.types.doc import DoclingDocument

    out = tmp_path / "out"
    documents = _convert(_inputs(corpus, tmp_path), out)
    assert sorted(d.source.rsplit("/", 1)[-1] for d in documents) == [
        "congress.pdf",
        "scans.zip!linn.png",
    ]
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(folders) == 2
    texts = [text for _, text in LINES]
    for folder, document in zip(folders, sorted(documents, key=lambda d: d.source), strict=True):
        assert not (folder / "formats-errors.txt").exists()
        pages = [p.number for p in document.pages]
        for kind, schema in (("alto", "alto-4-4.xsd"), ("page", "pagecontent-2019-07-15.xsd")):
            files = sorted((folder / kind).glob("page-*.xml"))
            assert [int(f.stem.split("-")[1]) for f in files] == pages
            for file in files:
                validate(file.read_text(encoding="utf-8"), schema)
        assert len(list((folder / "hocr").glob("page-*.html"))) == len(pages)
        for name in ("document.md", "document.txt"):
            written = (folder / name).read_text(encoding="utf-8")
            assert all(text in written for text in texts), name
        docling = DoclingDocument.model_validate_json(
            (folder / "document.docling.json").read_text()
        )
        assert all(text in docling.export_to_markdown() for text in texts)
        found = subprocess.run(
            ["pdftotext", str(folder / "document.pdf"), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert found.count("\f") == len(pages) and all(text in found for text in texts)
    before = {
        p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "manifest" not in p.name
    }
    rerun = _convert(tmp_path / "in", out)  # the same inputs: nothing is read or rewritten
    assert rerun == [] or all(d.status == "success" for d in rerun)
    after = {
        p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "manifest" not in p.name
    }
    assert {p: t for p, t in after.items() if p in before} == before


def test_a_format_that_cannot_be_written_is_named_and_the_rest_are_written(tmp_path: Path) -> None:
    from format_pages import two_column_document

    document = two_column_document().model_copy(update={"source": str(tmp_path / "gone.png")})
    failed = write_formats(document, tmp_path, list(FORMATS))
    assert list(failed) == ["pdf"] and "gone.png" in failed["pdf"]
    assert (tmp_path / "document.md").read_text().startswith("<!-- page 1 -->")
    assert (tmp_path / "alto" / "page-0001.xml").is_file()


def test_formats_need_an_output_folder_and_x_md_says_what_to_do(tmp_path: Path) -> None:
    runner = CliRunner()
    sample = Path(__file__).parents[2] / "examples" / "sample.pdf"
    refused = runner.invoke(app, ["convert", str(sample), "--out", str(tmp_path / "x.md")])
    assert refused.exit_code == 2 and "--out DIR/ --formats md" in refused.stderr
    no_folder = ["convert", str(sample), "--formats", "alto", "--out", str(tmp_path / "x.jsonl")]
    refused = runner.invoke(app, no_folder)
    assert refused.exit_code == 2 and "add --out DIR/" in refused.stderr
    unknown = runner.invoke(
        app, ["convert", str(sample), "--formats", "docx", "-o", f"{tmp_path}/"]
    )
    assert unknown.exit_code == 2 and "unknown format 'docx'" in unknown.stderr


def test_a_format_that_fails_halfway_leaves_none_of_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from format_pages import two_column_document

    import docvlm.formats.alto as alto

    document = two_column_document()
    second = document.pages[0].model_copy(update={"number": 2})
    document = document.model_copy(update={"pages": (document.pages[0], second)})
    written = alto.page_alto

    def second_page_fails(page: object, source: str) -> str:
        if getattr(page, "number", 0) == 2:
            raise RuntimeError("page 2 cannot be written")
        return written(page, source)  # type: ignore[arg-type]

    monkeypatch.setattr(alto, "page_alto", second_page_fails)
    failed = write_formats(document, tmp_path, ["alto", "md"])
    assert list(failed) == ["alto"] and not (tmp_path / "alto").exists()
    assert (tmp_path / "document.md").is_file()

    def disk_full(page: object, source: str) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(alto, "page_alto", disk_full)
    (tmp_path / "full").mkdir()
    with pytest.raises(OSError, match="No space left"):  # the run stops; a rerun resumes
        write_formats(document, tmp_path / "full", ["alto"])


def test_formats_are_checked_before_anything_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from docvlm.errors import MissingDependencyError
    from docvlm.formats.files import parse_formats

    assert parse_formats("txt, PDF,alto") == ("txt", "alto", "pdf")
    with pytest.raises(ValueError, match="unknown format 'docx'"):
        parse_formats(["md,docx"])
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "pikepdf" else real(name)
    )
    with pytest.raises(MissingDependencyError, match=r"docvlm\[pdf\]"):
        parse_formats("pdf")
    with DocVLM(Settings(device="cpu"), engine_factory=factory) as client:
        for out in (None, tmp_path / "x.jsonl"):
            with pytest.raises(ValueError, match="output folder"):
                next(client.convert_many([tmp_path], out=out, formats=["md"]))
    assert not list(tmp_path.iterdir())  # refused before any lock, manifest or model
