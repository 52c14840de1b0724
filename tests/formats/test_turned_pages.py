"""Pages read turned or straightened (issue 28): every format keeps the scan's pixels and
says how the text lies, the way each format provides for it; all stay valid."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from lxml import etree
from PIL import Image
from scan_pages import pdftotext_words
from schemas import validate

from docvlm import Document, DocVLM, Settings
from docvlm.testing import ScriptedEngine

ANSWER = "<loc0100><loc0100><loc0200><loc0900> alpha beta gamma"
ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"
PAGE = "{http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15}"


@pytest.fixture(scope="module")
def scan(corpus: Path) -> Image.Image:
    image = Image.open(corpus / "pdfs/good_scans/ocrmypdf_linn.png").convert("RGB")
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.BOX)


def _convert(image: Image.Image, path: Path) -> Document:
    image.save(path)
    engine = ScriptedEngine(lambda request: ANSWER)
    client = DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="scripted")
    return client.convert(path)


def _moved(x: float, y: float, size: tuple[int, int], turns: int, degrees: float) -> tuple:
    """Where a point of the upright page lands on the page turned counter-clockwise by
    ``turns`` quarters then by ``degrees`` (as ``Image.rotate(..., expand=True)`` does)."""
    width, height = size
    for _ in range(turns):
        x, y, width, height = y, width - x, height, width
    if degrees:
        a = math.radians(degrees)
        cos, sin = math.cos(a), math.sin(a)
        new_w = abs(width * cos) + abs(height * sin)
        new_h = abs(width * sin) + abs(height * cos)
        dx, dy = x - width / 2, y - height / 2
        x, y = new_w / 2 + dx * cos + dy * sin, new_h / 2 - dx * sin + dy * cos
    return x, y


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
@pytest.mark.parametrize(("turns", "degrees"), [(1, 0.0), (2, 0.0), (3, 0.0)])
def test_searchable_words_land_on_the_words_of_the_scan(
    scan: Image.Image, tmp_path: Path, turns: int, degrees: float
) -> None:
    pytest.importorskip("fpdf")
    pytest.importorskip("pikepdf")
    upright = _convert(scan, tmp_path / "upright.png")
    (flat,) = pdftotext_words(upright.write_searchable_pdf(tmp_path / "upright.pdf"))
    turned_image = scan.rotate(90 * turns, expand=True) if turns else scan
    if degrees:
        turned_image = turned_image.rotate(
            degrees, Image.Resampling.BICUBIC, True, fillcolor="white"
        )
    turned = _convert(turned_image, tmp_path / "turned.png")
    assert turned.pages[0].rotation == 90 * turns
    (page,) = pdftotext_words(turned.write_searchable_pdf(tmp_path / "turned.pdf"))
    assert page.width / page.height == pytest.approx(turned_image.width / turned_image.height, 1e-3)
    # each word of the upright page's PDF, moved as the scan was turned, is found there
    px_flat = flat.width / scan.width  # points per pixel, both PDFs
    scale = page.width / turned_image.width
    words = [((w.box.x0 + w.box.x1) / 2, (w.box.y0 + w.box.y1) / 2, w.text) for w in page.words]
    assert len(words) >= len(flat.words) > 10
    # (pdftotext joins two touching words of the flat page into one: "gammaalpha")
    matched = 0
    for word in flat.words:
        cx = (word.box.x0 + word.box.x1) / 2 / px_flat
        cy = (word.box.y0 + word.box.y1) / 2 / px_flat
        x, y = _moved(cx, cy, scan.size, turns, degrees)
        near = [
            text
            for wx, wy, text in words
            if text in word.text
            and abs(wx - x * scale) <= 0.03 * page.width + (word.box.x1 - word.box.x0) / 2
            and abs(wy - y * scale) <= 0.03 * page.height + (word.box.x1 - word.box.x0) / 2
        ]
        assert near, (word, x * scale, y * scale)
        matched += word.text in near
    assert matched >= len(flat.words) // 2


@pytest.mark.parametrize(("turns", "degrees"), [(1, 0.0), (0, 4.0)])
def test_alto_page_and_hocr_say_how_the_text_lies(
    scan: Image.Image, tmp_path: Path, turns: int, degrees: float
) -> None:
    image = scan.rotate(90 * turns, expand=True) if turns else scan
    if degrees:
        image = image.rotate(degrees, Image.Resampling.BICUBIC, True, fillcolor="white")
    document = _convert(image, tmp_path / "page.png")
    page = document.pages[0]
    angle = page.rotation + page.skew
    assert angle == pytest.approx(90 * turns + degrees, abs=0.6)  # the scan's own skew is small
    alto = validate(document.to_alto()[1], "alto-4-4.xsd")
    (alto_page,) = alto.iter(f"{ALTO}Page")
    assert float(alto_page.get("ROTATION")) == pytest.approx(angle % 360, abs=0.01)
    xml = validate(document.to_page_xml()[1], "pagecontent-2019-07-15.xsd")
    (page_element,) = xml.iter(f"{PAGE}Page")
    assert float(page_element.get("orientation")) == pytest.approx(angle, abs=0.01)
    lines = list(xml.iter(f"{PAGE}TextLine"))
    assert lines
    for line in lines:  # each line's polygon runs along the text on the scan
        points = [
            tuple(map(int, p.split(","))) for p in line.find(f"{PAGE}Coords").get("points").split()
        ]
        (x0, y0), (x1, y1) = points[0], points[1]
        if math.hypot(x1 - x0, y1 - y0) > 100:  # a whole line, not one cut by the edge
            assert math.degrees(math.atan2(y0 - y1, x1 - x0)) % 360 == pytest.approx(
                angle % 360, abs=0.7
            )
    hocr = etree.fromstring(document.to_hocr()[1].encode())
    titles = [e.get("title") for e in hocr.iter() if e.get("class") == "ocr_line"]
    assert titles and all(t.endswith(f"textangle {angle % 360:g}") for t in titles)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
def test_on_a_skewed_scan_the_text_follows_the_slope_of_the_lines(
    scan: Image.Image, tmp_path: Path
) -> None:
    pytest.importorskip("fpdf")
    pytest.importorskip("pikepdf")
    image = scan.rotate(5.0, Image.Resampling.BICUBIC, True, fillcolor="white")
    document = _convert(image, tmp_path / "skewed.png")
    record = document.pages[0]
    assert record.skew == pytest.approx(5.0, abs=0.6)
    (page,) = pdftotext_words(document.write_searchable_pdf(tmp_path / "skewed.pdf"))
    scale = page.width / image.width
    # (lines cut by the page's edge are not whole rectangles: not compared)
    lines = [
        ln
        for r in record.results
        for ln in getattr(r, "lines", ())
        if ln.box
        and ln.box.x0 > 0
        and ln.box.y0 > 0
        and ln.box.x1 < record.width
        and ln.box.y1 < record.height
    ]
    assert len(lines) > 10
    # pdftotext gives text at an angle glyph by glyph: each lands on its line, in order
    for line in lines:
        # the line's glyphs, in order along its turned rectangle on the scan
        (x0, y0), (x1, y1), (x2, y2), _ = record.outline(line.box)
        cx, cy = (x0 + x2) / 2 * scale, (y0 + y2) / 2 * scale
        along = ((x1 - x0) * scale, (y1 - y0) * scale)
        length = math.hypot(*along)
        mine = []
        for word in page.words:
            wx, wy = (word.box.x0 + word.box.x1) / 2, (word.box.y0 + word.box.y1) / 2
            t = ((wx - cx) * along[0] + (wy - cy) * along[1]) / length  # along the line
            d = (-(wx - cx) * along[1] + (wy - cy) * along[0]) / length  # across it
            if abs(t) <= length / 2 and abs(d) <= 0.01 * page.height:
                mine.append((t, word.text))
        # (two tiles' copies of one scripted line can lie on each other: doubled glyphs)
        glyphs = "".join(text for _, text in sorted(mine))
        assert _single(glyphs) == _single("alphabetagamma"), (line, glyphs)


def _single(text: str) -> str:
    """``text`` with runs of one letter written once."""
    return "".join(c for i, c in enumerate(text) if i == 0 or text[i - 1] != c)
