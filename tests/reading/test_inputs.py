"""Archive-grade inputs: the whole corpus, archives, folders, limits and timeouts."""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from docvlm import DocVLM, InputLimitError, PasswordRequiredError, Settings
from docvlm.cli import app
from docvlm.reading.pdf import RenderWorker
from docvlm.reading.render import PageFailure, PageImage, load_pages
from docvlm.reading.sources import expand_sources
from docvlm.settings import Limits
from docvlm.testing import ScriptedEngine

PASSWORDS = {
    "ocrmypdf_skew-encrypted.pdf": "password",
    "pypdf-samples_libreoffice-writer-password.pdf": "openpassword",
    "pypdf_r2-user-password.pdf": "asdfzxcv",
    "pypdf_r4-aes-user-password.pdf": "asdfzxcv",
    "pypdf_r6-user-password.pdf": "asdfzxcv",
}


def _client(**settings: object) -> DocVLM:
    engine = ScriptedEngine(lambda request: "a line", resolution=448)
    values: dict[str, object] = {"dpi": 60, "max_page_pixels": 4_000_000} | settings
    return DocVLM(Settings(**values), engine_factory=lambda c, s: engine, checkpoint="x")


def test_every_corpus_file_gives_pages_or_a_typed_error(corpus: Path) -> None:
    folder = corpus / "pdfs"
    # the reference texts, READMEs and password lists beside the scans are not documents
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".txt", ".md"))
    with _client() as client:
        documents = list(client.convert_many([folder]))  # in the order they finish
    assert sorted(d.source for d in documents) == sorted(str(p) for p in files)
    by_name = {Path(d.source).name: d for d in documents}
    for document in documents:
        if document.status == "failure":
            assert document.error, document.source
        else:
            assert document.pages, document.source
        for page in document.pages:
            assert page.status != "error" or page.error
    # the documented cases
    for name in PASSWORDS:
        assert by_name[name].status == "failure"
        assert "password" in (by_name[name].error or "")
    assert by_name["qpdf_fuzz70245_zero_byte.pdf"].error == "the file is empty"
    assert by_name["pillow_decompression_bomb.gif"].status == "failure"
    assert "decompression bomb" in (by_name["pillow_decompression_bomb.gif"].error or "")
    assert by_name["qpdf_not-even-a-pdf.pdf"].status == "failure"
    assert by_name["ocrmypdf_crom_png_renamed.pdf"].status == "success"  # a PNG, by content
    assert len(by_name["pillow_g4-multi.tiff"].pages) == 3
    assert len(by_name["ocrmypdf_cardinal.pdf"].pages) == 4
    if "ocrmypdf_poster.pdf" in by_name:  # full corpus only (tests/data omits 0.7 MB)
        poster = by_name["ocrmypdf_poster.pdf"].pages[0]
        assert poster.width * poster.height <= 4_000_000 and poster.warnings  # a lower DPI
        assert poster.dpi is not None and poster.dpi < 60
    scan = by_name["ocrmypdf_typewriter.png"].pages[0]  # 4000 x 2864, reduced to fit
    assert scan.width * scan.height <= 4_000_000 and "reduced 2x" in scan.warnings[0]


def test_encrypted_pdfs_open_with_their_password(corpus: Path) -> None:
    folder = corpus / "pdfs/encrypted"
    for name, password in PASSWORDS.items():
        with pytest.raises(PasswordRequiredError, match=name):
            list(load_pages(folder / name, dpi=20))
        pages = list(load_pages(folder / name, dpi=20, password=password))
        assert pages and all(isinstance(p, PageImage) for p in pages), name
        with pytest.raises(PasswordRequiredError, match="wrong password"):
            list(load_pages(folder / name, dpi=20, password="nope"))


def test_rotated_pages_come_upright(corpus: Path) -> None:
    pages = [p for p in load_pages(corpus / "pdfs/rotated/ocrmypdf_cardinal.pdf", dpi=20)]
    sizes = [p.image.size for p in pages if isinstance(p, PageImage)]
    assert [w > h for w, h in sizes] == [False, True, False, True]


def test_hanging_page_is_abandoned_not_the_job(
    make_pdf: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the worker is its own program: it finds the helper on this process's sys.path
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1]))
    worker = RenderWorker(timeout=3.0, target="render_helpers:hanging_serve")
    try:
        items = list(load_pages(make_pdf(3), dpi=30, reader=worker))
    finally:
        worker.shutdown()
    assert [type(i).__name__ for i in items] == ["PageImage", "PageFailure", "PageImage"]
    failure = items[1]
    assert isinstance(failure, PageFailure) and "abandoned" in str(failure.error)
    assert "page 2" in str(failure.error)


def test_worker_and_in_process_render_the_same(make_pdf: Callable[..., Path]) -> None:
    pdf = make_pdf(2)
    worker = RenderWorker(timeout=60)
    try:
        a = [
            p.image.tobytes()
            for p in load_pages(pdf, dpi=40, reader=worker)
            if isinstance(p, PageImage)
        ]
    finally:
        worker.shutdown()
    b = [p.image.tobytes() for p in load_pages(pdf, dpi=40) if isinstance(p, PageImage)]
    assert a == b and len(a) == 2


def test_limits(make_pdf: Callable[..., Path]) -> None:
    with pytest.raises(InputLimitError, match="3 pages, over the limit of 2"):
        list(load_pages(make_pdf(3), limits=Limits(max_pages=2)))
    big = Image.new("RGB", (3000, 3000), "white")
    with pytest.raises(InputLimitError, match="decompression bomb"):
        list(load_pages(big, limits=Limits(max_page_pixels=1_000_000)))
    (page,) = load_pages(big, limits=Limits(max_page_pixels=4_000_000))
    assert isinstance(page, PageImage) and page.image.size == (1500, 1500) and page.warnings


def _pdf_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(buffer, "PDF")
    return buffer.getvalue()


def test_zip_and_tar_are_expanded_safely(tmp_path: Path) -> None:
    png = io.BytesIO()
    Image.new("RGB", (20, 10), "white").save(png, "PNG")
    archive = tmp_path / "batch.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("b/scan.pdf", _pdf_bytes())
        z.writestr("a.png", png.getvalue())
        z.writestr("../../evil.pdf", _pdf_bytes())
        z.writestr(".hidden.pdf", _pdf_bytes())
        link = zipfile.ZipInfo("link.pdf")
        link.external_attr = 0o120777 << 16
        z.writestr(link, "/etc/passwd")
    items = list(expand_sources([archive]))
    names = [i.name.split("!")[1] for i in items]
    assert names == ["../../evil.pdf", "a.png", "b/scan.pdf", "link.pdf"]
    errors = {i.name.split("!")[1]: str(i.error) for i in items if i.error}
    assert "unsafe path" in errors["../../evil.pdf"] and "link" in errors["link.pdf"]

    tar_path = tmp_path / "batch.tar.gz"
    with tarfile.open(tar_path, "w:gz") as t:
        data = _pdf_bytes()
        info = tarfile.TarInfo("docs/one.pdf")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
        sym = tarfile.TarInfo("docs/escape.pdf")
        sym.type = tarfile.SYMTYPE
        sym.linkname = "../../../etc/passwd"
        t.addfile(sym)
    items = list(expand_sources([tar_path]))
    assert [i.error is None for i in items] == [False, True]
    with _client() as client:
        documents = list(client.convert_many([archive, tar_path]))
    order = [i.name for i in expand_sources([archive, tar_path])]
    documents.sort(key=lambda d: order.index(d.source))  # they come as they finish
    assert [d.status for d in documents] == [
        "failure",
        "success",
        "success",
        "failure",
        "failure",
        "success",
    ]
    member = documents[1]
    assert member.source.endswith("batch.zip!a.png")
    assert all(r.source == member.source for p in member.pages for r in p.results)
    limited = list(expand_sources([archive], Limits(archive_max_members=2)))
    assert "over the limit of 2" in str(limited[0].error)


def test_folders_are_sorted_recursive_and_skip_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    for path in ("b/2.pdf", "a.pdf", ".git/x.pdf", ".hidden.pdf", "b/1.pdf"):
        (tmp_path / path).write_bytes(_pdf_bytes())
    names = [os.path.relpath(i.name, tmp_path) for i in expand_sources([tmp_path])]
    assert names == ["a.pdf", "b/1.pdf", "b/2.pdf"]


def test_inspect_json(corpus: Path) -> None:
    folder = corpus / "pdfs/encrypted"
    result = CliRunner().invoke(app, ["inspect", str(folder), "--json"])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 1  # some files cannot be read
    for record in records:
        assert {"source", "type", "pages", "error"} <= set(record)
    by_name = {Path(r["source"]).name: r for r in records}
    assert "password" in by_name["pypdf_r2-user-password.pdf"]["error"]
    assert by_name["pypdf_unencrypted.pdf"]["pages"][0]["width"] > 0
    assert "PASSWORDS.txt" not in by_name  # not a document: skipped in a folder
    opened = CliRunner().invoke(
        app,
        ["inspect", str(folder / "pypdf_r2-user-password.pdf"), "--password", "asdfzxcv", "--json"],
    )
    assert opened.exit_code == 0 and json.loads(opened.stdout)["error"] is None


def test_one_archive_member_is_read_on_its_own_and_refused_as_the_walk_refuses(
    tmp_path: Path,
) -> None:
    """``read_member`` gives the bytes ``expand_sources`` gave for ``archive.zip!member``
    (used to find an original later: searchable PDFs, the viewer), without reading the
    rest of the archive, and refuses what the walk refuses."""
    from docvlm.errors import InputError
    from docvlm.reading.sources import read_member

    def png(side: int) -> bytes:
        buffer = io.BytesIO()
        Image.effect_noise((side, side), 64).save(buffer, "PNG")  # noise: no compression
        return buffer.getvalue()

    small_png, big_png = png(8), png(40)
    archive = tmp_path / "scans.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("a.png", small_png)
        zipped.writestr("big.png", big_png)
        zipped.writestr("../evil.png", small_png)
    walked = {i.name: i.source for i in expand_sources([archive]) if i.error is None}
    assert read_member(archive, "a.png", Settings().limits()) == walked[f"{archive}!a.png"]
    small = Limits(archive_max_bytes=len(small_png) + 200)
    with pytest.raises(InputLimitError, match="over the size limit"):
        read_member(archive, "big.png", small)
    with pytest.raises(InputLimitError):
        read_member(archive, "../evil.png", Settings().limits())
    with pytest.raises(InputError, match="no such member"):
        read_member(archive, "gone.png", Settings().limits())
    tarred = tmp_path / "scans.tar"
    with tarfile.open(tarred, "w") as tar:
        info = tarfile.TarInfo("b.png")
        info.size = len(small_png)
        tar.addfile(info, io.BytesIO(small_png))
    assert read_member(tarred, "b.png", Settings().limits()) == small_png
