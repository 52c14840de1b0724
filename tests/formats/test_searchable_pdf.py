"""Searchable PDF: the scan kept, the text where the records say, found by pdftotext."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from PIL import Image
from scan_pages import (
    PdfPage,
    assert_words_on_lines,
    convert_scripted,
    ocr_output,
    pdftotext_words,
)
from scan_pages import scan_lines as lines_on

from docvlm import Document, InputError, SourceChangedError, TextResult
from parsers import TextLine

pikepdf = pytest.importorskip("pikepdf")
pytest.importorskip("fpdf")
pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")


def _linn_text(corpus: Path, count: int = 8) -> list[str]:
    text = (corpus / "pdfs" / "good_scans" / "ocrmypdf_linn.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()][:count]


def _records(document: Document, number: int) -> list[TextLine]:
    (result,) = (r for r in document.pages[number].results if isinstance(r, TextResult))
    return list(result.lines)


def _image_of(pdf: Path, page: int = 0) -> object:
    with pikepdf.open(pdf) as opened:
        ((_name, raw),) = opened.pages[page].get_images().items()
        return pikepdf.PdfImage(raw).as_pil_image(), bytes(raw.read_raw_bytes())


def test_a_png_scan_keeps_its_pixels_and_its_words_sit_on_the_record_boxes(
    corpus: Path, tmp_path: Path
) -> None:
    source = corpus / "pdfs" / "good_scans" / "ocrmypdf_linn.png"
    with Image.open(source) as scan:
        size, pixels = scan.size, scan.convert("RGB").tobytes()
    lines = lines_on(_linn_text(corpus), *size)
    document = convert_scripted(source, max(size), {"ocr": ocr_output(lines, max(size))})
    out = document.write_searchable_pdf(tmp_path / "linn.pdf")

    (page,) = pdftotext_words(out)
    records = _records(document, 0)
    assert [r.text for r in records] == [text for _, text in lines]
    assert_words_on_lines(page, records, size)
    kept, _raw = _image_of(out)
    assert kept.size == size  # type: ignore[attr-defined]
    assert kept.convert("RGB").tobytes() == pixels  # type: ignore[attr-defined]


def test_a_jpeg_is_embedded_as_the_same_jpeg_bytes(corpus: Path, tmp_path: Path) -> None:
    source = corpus / "pdfs" / "images" / "pillow_pil_sample_cmyk.jpg"
    lines = lines_on(["CMYK sample, kept as JPEG"], 100, 100)
    document = convert_scripted(source, 100, {"ocr": ocr_output(lines, 100)})
    out = document.write_searchable_pdf(tmp_path / "cmyk.pdf")
    _image, raw = _image_of(out)
    assert raw == source.read_bytes()
    (page,) = pdftotext_words(out)
    assert_words_on_lines(page, _records(document, 0), (100, 100))


def test_an_exif_rotated_photo_is_embedded_upright_as_docvlm_read_it(
    corpus: Path, tmp_path: Path
) -> None:
    source = corpus / "pdfs" / "images" / "pillow_hopper_orientation_6.jpg"
    lines = lines_on(["hopper upright"], 128, 128)
    document = convert_scripted(source, 128, {"ocr": ocr_output(lines, 128)})
    out = document.write_searchable_pdf(tmp_path / "hopper.pdf")
    kept, _raw = _image_of(out)
    with Image.open(source) as photo:
        upright = photo.transpose(Image.Transpose.ROTATE_270)  # EXIF 6: turn 90 clockwise
        assert kept.convert("RGB").tobytes() == upright.convert("RGB").tobytes()  # type: ignore[attr-defined]


def test_pdf_pages_are_reused_as_they_are_with_the_text_over_them(
    corpus: Path, tmp_path: Path
) -> None:
    source = corpus / "pdfs" / "good_scans" / "pikepdf_congress.pdf"
    texts = ["Congress of the United States", "Begun and held at the City of Washington"]
    side = 634  # 304 pt at 150 dpi, the longer side
    lines = lines_on(texts, 417, 634)
    document = convert_scripted(source, side, {"ocr": ocr_output(lines, side)}, dpi=150)
    (record,) = document.pages
    out = document.write_searchable_pdf(tmp_path / "congress.pdf")

    (page,) = pdftotext_words(out)
    assert (page.width, page.height) == (200, 304)
    assert_words_on_lines(page, _records(document, 0), (record.width, record.height))
    with pikepdf.open(source) as original, pikepdf.open(out) as written:
        before, after = original.pages[0], written.pages[0]
        # the original content stream is one of the page's streams, byte for byte
        streams = [bytes(s.read_raw_bytes()) for s in after.obj.Contents]
        assert bytes(before.obj.Contents.read_raw_bytes()) in streams
        (old,) = before.get_images().values()
        assert any(
            bytes(new.read_raw_bytes()) == bytes(old.read_raw_bytes())
            for new in after.get_images().values()
        )


def test_a_rotated_page_gets_its_text_where_it_is_shown(corpus: Path, tmp_path: Path) -> None:
    """A page with /Rotate 90 is rendered turned (landscape); the layer must turn too."""
    rotated = tmp_path / "rotated.pdf"
    with pikepdf.open(corpus / "pdfs" / "good_scans" / "pikepdf_congress.pdf") as pdf:
        pdf.pages[0].rotate(90, relative=False)
        pdf.save(rotated)
    lines = lines_on(["shown turned", "a second line"], 634, 417)
    document = convert_scripted(rotated, 634, {"ocr": ocr_output(lines, 634)}, dpi=150)
    (record,) = document.pages
    assert record.width > record.height
    out = document.write_searchable_pdf(tmp_path / "out.pdf")
    (page,) = pdftotext_words(out)
    # pdftotext -bbox gives the unrotated page size but word boxes as the page is shown
    assert (page.width, page.height) == (200, 304)
    shown = PdfPage(page.height, page.width, page.words)
    assert_words_on_lines(shown, _records(document, 0), (record.width, record.height))


def test_one_pdf_page_per_page_read_in_order(corpus: Path, tmp_path: Path) -> None:
    source = corpus / "pdfs" / "rotated" / "ocrmypdf_cardinal.pdf"
    side = 792
    lines = lines_on(["a page of the cardinal scan"], 612, 792)
    document = convert_scripted(source, side, {"ocr": ocr_output(lines, side)}, pages="4,2")
    assert [p.number for p in document.pages] == [4, 2]
    out = document.write_searchable_pdf(tmp_path / "two.pdf")
    pages = pdftotext_words(out)
    assert len(pages) == 2
    with pikepdf.open(source) as original, pikepdf.open(out) as written:
        for index, number in enumerate((4, 2)):
            (old,) = original.pages[number - 1].get_images().values()
            (new,) = written.pages[index].get_images().values()
            assert bytes(new.read_raw_bytes()) == bytes(old.read_raw_bytes())
    for index, page in enumerate(pages):
        record = document.pages[index]
        assert_words_on_lines(page, _records(document, index), (record.width, record.height))


def test_the_original_must_be_there_and_unchanged(corpus: Path, tmp_path: Path) -> None:
    source = tmp_path / "scan.png"
    shutil.copy(corpus / "pdfs" / "good_scans" / "ocrmypdf_typewriter.png", source)
    lines = lines_on(["typewriter"], 4000, 2864)
    document = convert_scripted(source, 4000, {"ocr": ocr_output(lines, 4000)})
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    hashed = document.model_copy(update={"sha256": digest})
    hashed.write_searchable_pdf(tmp_path / "ok.pdf")  # the recorded hash matches

    with pytest.raises(SourceChangedError, match=r"scan\.png: the file changed"):
        hashed.model_copy(update={"sha256": "0" * 64}).write_searchable_pdf(tmp_path / "x.pdf")
    with pytest.raises(InputError, match=r"gone\.png: no such file"):
        document.model_copy(update={"source": str(tmp_path / "gone.png")}).write_searchable_pdf(
            tmp_path / "x.pdf"
        )
    in_memory = convert_scripted(source, 4000, {"ocr": ocr_output(lines, 4000)})
    memory = in_memory.model_copy(update={"source": "<bytes>"})
    with pytest.raises(InputError, match="read from memory"):
        memory.write_searchable_pdf(tmp_path / "x.pdf")
    # given the bytes, the same document writes
    written = memory.write_searchable_pdf(tmp_path / "m.pdf", source=source.read_bytes())
    assert [w.text for w in pdftotext_words(written)[0].words] == ["typewriter"]
