"""Searchable PDF: the scan kept, the text where the records say, found by pdftotext."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from scan_pages import (
    PdfPage,
    Word,
    assert_words_on_lines,
    convert_scripted,
    ocr_output,
    pdftotext_words,
)
from scan_pages import scan_lines as lines_on

from docvlm import Document, InputError, SourceChangedError, TextResult
from parsers import Box, TextLine

pikepdf = pytest.importorskip("pikepdf")
pytest.importorskip("fpdf")
etree = pytest.importorskip("lxml.etree")
pdfium = pytest.importorskip("pypdfium2")
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


# --- what readers give back: poppler's pdftotext and Chrome's pdfium --------------------

#: The embedding marks pdftotext wraps right-to-left runs in when it writes UTF-8
#: (RLE, LRE ... PDF); they are its layout, not text of the page.
_POPPLER_MARKS = dict.fromkeys(map(ord, "\u202a\u202b\u202c"))


def _pdftotext(pdf: Path, *options: str) -> list[str]:
    run = subprocess.run(
        ["pdftotext", *options, str(pdf), "-"], capture_output=True, text=True, check=True
    )
    return [ln.translate(_POPPLER_MARKS).strip() for ln in run.stdout.splitlines() if ln.strip()]


def _pdfium(pdf: Path) -> list[str]:
    document = pdfium.PdfDocument(str(pdf))
    try:
        text = document[0].get_textpage().get_text_range()
    finally:
        document.close()
    return [line.strip() for line in text.splitlines() if line.strip()]


def _linn(corpus: Path, lines: list[tuple[Box, str]], tmp_path: Path) -> tuple[Document, Path]:
    """The Linn scan (2550 x 3300 px, one pixel a point) read as ``lines``, and its PDF."""
    source = corpus / "pdfs" / "good_scans" / "ocrmypdf_linn.png"
    document = convert_scripted(source, 3300, {"ocr": ocr_output(lines, 3300)})
    assert [r.text for r in _records(document, 0)] == [text for _, text in lines]
    return document, document.write_searchable_pdf(tmp_path / "linn.pdf")


def _words_in(page: PdfPage, box: Box | None) -> list[Word]:
    """The words whose vertical centre is in ``box`` (PDF points = Linn pixels)."""
    assert box is not None
    return [w for w in page.words if box.y0 <= (w.box.y0 + w.box.y1) / 2 <= box.y1]


def test_right_to_left_lines_come_back_in_reading_order(corpus: Path, tmp_path: Path) -> None:
    texts = ["שלום עולם", "مرحبا بالعالم"]
    document, out = _linn(corpus, lines_on(texts, 2550, 3300), tmp_path)
    assert _pdftotext(out) == texts
    assert _pdftotext(out, "-layout") == texts
    assert _pdfium(out) == texts
    # the words sit on the scan right to left: the first word read is the rightmost
    (page,) = pdftotext_words(out)
    for record in _records(document, 0):
        assert record.box is not None
        shown = sorted(_words_in(page, record.box), key=lambda w: -w.box.x1)
        assert [w.text[::-1] for w in shown] == record.text.split()  # -bbox: shown order
        assert abs(shown[0].box.x1 - record.box.x1) <= 0.03 * page.width
        assert abs(shown[-1].box.x0 - record.box.x0) <= 0.03 * page.width
    # digits, Latin and brackets in a right-to-left line: pdfium undoes the bidi algorithm
    # exactly; poppler's simpler rule may move a space or turn a bracket (docs/formats.md)
    mixed = ["שלום 123 abc עולם", "العدد 123 هنا", "(שלום) עולם"]
    _document, out = _linn(corpus, lines_on(mixed, 2550, 3300), tmp_path)
    assert _pdfium(out) == mixed


def test_characters_beyond_the_bmp_are_kept(corpus: Path, tmp_path: Path) -> None:
    texts = ["𝑥 = 2 😀", "𝔄", "plain BMP text"]
    document, out = _linn(corpus, lines_on(texts, 2550, 3300), tmp_path)
    assert _pdftotext(out) == texts
    assert _pdfium(out) == texts
    (page,) = pdftotext_words(out)
    assert_words_on_lines(page, _records(document, 0), (2550, 3300))
    assert document.pages[0].warnings == ()  # nothing was lost, so nothing to warn about


def test_a_narrow_line_keeps_its_word_breaks(corpus: Path, tmp_path: Path) -> None:
    """Squeezed to a third of its width, a space was under a fifth of the font size and
    pdftotext -raw read "bottomrightedge"."""
    tall = [(Box(x0=2000, y0=2900, x1=2200, y1=3000), "bottom right edge")]
    short = [(Box(x0=400, y0=400, x1=1000, y1=460), "bottom right edge and more")]
    for lines in (tall, short):
        document, out = _linn(corpus, lines, tmp_path)
        (text,) = (t for _, t in lines)
        for options in ((), ("-raw",), ("-layout",)):
            assert _pdftotext(out, *options) == [text], options
        assert _pdfium(out) == [text]
        (page,) = pdftotext_words(out)
        assert_words_on_lines(page, _records(document, 0), (2550, 3300))


def test_a_line_at_or_past_the_page_edge_is_in_the_layer(corpus: Path, tmp_path: Path) -> None:
    """The model's square frame is 3300 px wide on a 2550 px page: a box reaching past the
    right edge is clipped to it, one wholly past it is cut to nothing at the edge."""
    lines = [
        (Box(x0=1700, y0=500, x1=2800, y1=600), "reaches past the edge"),
        (Box(x0=2700, y0=900, x1=3200, y1=1000), "wholly past the edge"),
        (Box(x0=1500, y0=1400, x1=2550, y1=1500), "ends at the edge"),
    ]
    document, out = _linn(corpus, lines, tmp_path)
    records = _records(document, 0)
    assert records[1].box is not None and records[1].box.width == 0  # cut to nothing
    assert _pdftotext(out) == [text for _, text in lines]
    assert _pdfium(out) == [text for _, text in lines]
    (page,) = pdftotext_words(out)
    for record in records:
        words = _words_in(page, record.box)
        assert [w.text for w in sorted(words, key=lambda w: w.box.x0)] == record.text.split()
        assert all(w.box.x0 >= 0 and w.box.x1 <= page.width + 0.01 for w in words)
        assert abs(max(w.box.x1 for w in words) - page.width) <= 0.03 * page.width
        assert record.box is not None and min(w.box.x0 for w in words) < page.width
        if record.box.width > 0:  # clipped at the edge: the text spans what is left
            assert abs(min(w.box.x0 for w in words) - record.box.x0) <= 0.03 * page.width


def test_a_line_below_a_landscape_page_is_in_the_layer(corpus: Path, tmp_path: Path) -> None:
    """A landscape page (634 x 417 px) is read in a 634 px square: boxes can pass its
    bottom edge, or lie wholly below it and be cut to no height."""
    rotated = tmp_path / "rotated.pdf"
    with pikepdf.open(corpus / "pdfs" / "good_scans" / "pikepdf_congress.pdf") as pdf:
        pdf.pages[0].rotate(90, relative=False)
        pdf.save(rotated)
    lines = [
        (Box(x0=50, y0=100, x1=400, y1=125), "a line on the page"),
        (Box(x0=50, y0=395, x1=250, y1=430), "reaches below it"),
        (Box(x0=350, y0=450, x1=600, y1=480), "wholly below it"),
    ]
    document = convert_scripted(rotated, 634, {"ocr": ocr_output(lines, 634)}, dpi=150)
    records = _records(document, 0)
    assert records[2].box is not None and records[2].box.height == 0  # cut to nothing
    out = document.write_searchable_pdf(tmp_path / "out.pdf")
    words = " ".join(text for _, text in lines).split()
    # the two at the bottom edge sit side by side: pdfium takes them as one line
    assert " ".join(_pdftotext(out)).split() == words
    assert " ".join(_pdfium(out)).split() == words
    (page,) = pdftotext_words(out)  # 200 x 304 pt unrotated, words as the page is shown
    shown_height, scale = page.width, page.height / 634
    for record in records[1:]:
        assert record.box is not None
        x0, x1, below = record.box.x0 * scale, record.box.x1 * scale, 200 * scale
        words = [w for w in page.words if x0 - 1 <= w.box.x0 < x1 and w.box.y0 > below]
        assert [w.text for w in sorted(words, key=lambda w: w.box.x0)] == record.text.split()
        assert all(w.box.y1 <= shown_height + 0.01 for w in words)
        assert abs(max(w.box.y1 for w in words) - shown_height) <= 0.03 * shown_height
        assert abs(min(w.box.x0 for w in words) - record.box.x0 * scale) <= 0.03 * page.height


def test_control_characters_follow_the_xml_formats(corpus: Path, tmp_path: Path) -> None:
    texts = ["nul\x00here", "bell\x07and\x1bescape", "clean line"]
    document, out = _linn(corpus, lines_on(texts, 2550, 3300), tmp_path)
    namespace = {"pc": "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"}
    xml = etree.fromstring(document.to_page_xml()[1].encode())
    page_xml = xml.xpath("//pc:TextLine/pc:TextEquiv/pc:Unicode/text()", namespaces=namespace)
    assert page_xml[0] == "nul\ufffdhere"  # the rule: U+FFFD where XML cannot hold it
    assert _pdftotext(out) == page_xml
    assert _pdfium(out) == page_xml
