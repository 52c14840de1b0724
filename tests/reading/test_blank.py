"""Blank paper costs no model call (issue 20): the ink measure, and what a read plans."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from docvlm import DocVLM, Settings, TextResult
from docvlm.engines import Request
from docvlm.reading.ink import InkMap
from docvlm.reading.render import PageImage, load_pages
from docvlm.testing import ScriptedEngine
from parsers import Box, Detection

A4_300 = (2480, 3508)  # A4 at 300 dpi


def _speckled(size: tuple[int, int], paper: int = 255, seed: int = 7) -> Image.Image:
    """Paper with scanner speckle: isolated dark pixels and a few 2 x 2 dust dots."""
    image = Image.new("L", size, paper)
    pixels = image.load()
    assert pixels is not None
    draw = random.Random(seed)
    for _ in range(size[0] * size[1] // 1000):  # 0.1 % of the pixels
        pixels[draw.randrange(size[0]), draw.randrange(size[1])] = draw.randrange(0, 90)
    dust = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = draw.randrange(size[0] - 2), draw.randrange(size[1] - 2)
        dust.rectangle((x, y, x + 1, y + 1), fill=20)
    return image.convert("RGB")


def _one_line(size: tuple[int, int] = A4_300, at: tuple[int, int] = (300, 1800)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text(at, "Received 12 March 1931, signed", fill="black", font_size=40)
    return image


def _client(engine: ScriptedEngine, **settings: object) -> DocVLM:
    return DocVLM(
        Settings(**settings),
        engine_factory=lambda c, s: engine,
        checkpoint="scripted",
    )


def test_ink_measure_on_made_pages() -> None:
    assert InkMap.of(Image.new("RGB", A4_300, "white")).blank
    assert InkMap.of(_speckled(A4_300)).blank  # noise and dust are not ink
    assert InkMap.of(_speckled((850, 1100), paper=215)).blank  # on grey paper too
    wash = Image.linear_gradient("L").resize((900, 1200)).point(lambda v: 200 + v // 6)
    assert InkMap.of(wash.convert("RGB")).blank  # a faint shading is no ink
    assert InkMap.of(Image.new("RGB", (900, 1200), "black")).blank  # all paper, however dark
    assert not InkMap.of(_one_line()).blank
    light_on_dark = Image.new("RGB", (1200, 900), (20, 20, 20))
    ImageDraw.Draw(light_on_dark).text((100, 400), "a negative scan", fill="white")
    assert not InkMap.of(light_on_dark).blank  # the paper is dark: light writing is ink
    coloured = Image.new("RGB", (1200, 900), (250, 240, 190))  # cream paper
    ImageDraw.Draw(coloured).text((100, 400), "stamped", fill=(200, 30, 30))
    assert not InkMap.of(coloured).blank


def test_ink_is_placed_on_the_page() -> None:
    ink = InkMap.of(_one_line())
    assert ink.has_ink(Box(x0=250, y0=1750, x1=900, y1=1900))
    assert not ink.has_ink(Box(x0=0, y0=0, x1=2480, y1=1500))
    assert not ink.has_ink(Box(x0=1500, y0=1700, x1=2480, y1=2000))  # right of the line
    assert 0 < ink.fraction() < 0.01


def _scan_pages(corpus: Path) -> list[PageImage]:
    names = [
        "pdfs/good_scans/ocrmypdf_ccitt.pdf",
        "pdfs/good_scans/ocrmypdf_jbig2.pdf",
        "pdfs/good_scans/ocrmypdf_linn.png",
        "pdfs/good_scans/ocrmypdf_typewriter.png",
        "pdfs/good_scans/ocrmypdf_2400dpi.pdf",
        "pdfs/good_scans/pikepdf_congress.pdf",
        "pdfs/rotated/ocrmypdf_cardinal.pdf",
        "pdfs/multipage/ocrmypdf_multipage.pdf",
        "pdfs/multipage/pypdf-samples_pdflatex-4-pages.pdf",
        "pdfs/images/pillow_g4-multi.tiff",  # a page holding the one word "Page1"
        "molecules/images_with_mol/uspto/US07314511-20080101-C00002.TIF",
    ]
    found = [corpus / name for name in names if (corpus / name).exists()]
    if not found:
        pytest.skip("no scans in the corpus")
    return [p for path in found for p in load_pages(path, dpi=100) if isinstance(p, PageImage)]


def test_real_scans_with_text_are_never_blank_and_the_blank_scan_is(corpus: Path) -> None:
    pages = _scan_pages(corpus)
    assert len(pages) >= 5
    for page in pages:
        assert not InkMap.of(page.image).blank, (page.source, page.number)
    blank_scan = corpus / "pdfs/good_scans/ocrmypdf_blank.pdf"
    if blank_scan.exists():  # a real scan of an empty sheet, with its scanner noise
        (scanned,) = load_pages(blank_scan, dpi=150)
        assert isinstance(scanned, PageImage) and InkMap.of(scanned.image).blank


def test_a_blank_page_makes_no_request(tmp_path: Path) -> None:
    scan = tmp_path / "blank.png"
    Image.new("RGB", A4_300, "white").save(scan, dpi=(300, 300))  # was 70 text requests
    engine = ScriptedEngine(lambda request: "never asked")
    with _client(engine) as client:
        document = client.convert(scan, tasks=("text", "table"))
        (streamed,) = client.convert_many([scan], tasks=("text", "table"))  # the archive path
    assert engine.requests == []
    for read in (document, streamed):
        (page,) = read.pages
        assert read.status == "success" and page.status == "ok"
        assert page.warnings == ("page 1: blank (no ink), not read",)
        text, table = page.results
        assert isinstance(text, TextResult) and text.text == "" and text.stop == "blank"
        assert table.task == "table" and table.stop == "blank" and table.raw == ""


def test_speckle_and_layout_on_blank_paper_make_no_request() -> None:
    engine = ScriptedEngine(lambda request: "never asked")
    with _client(engine) as client:
        (page,) = client.convert(_speckled(A4_300), tasks=("text",), layout=True).pages
    assert engine.requests == []
    assert [r.stop for r in page.results] == ["blank", "blank"]  # layout, then text
    assert page.warnings == ("page 1: blank (no ink), not read",)


def test_one_line_of_text_is_read_from_the_tiles_that_hold_it() -> None:
    asked: list[Request] = []

    def respond(request: Request) -> str:
        asked.append(request)
        return "<loc0100><loc0100><loc0200><loc0900> Received 12 March 1931"

    engine = ScriptedEngine(respond)
    with _client(engine) as client:
        (page,) = client.convert(_one_line(), tasks=("text",)).pages
    assert 1 <= len(asked) <= 6  # of 70 tiles, only those crossing the line
    assert all(InkMap.of(r.image).fraction() > 0 for r in asked)
    (result,) = page.results
    assert isinstance(result, TextResult) and "Received 12 March 1931" in result.text
    assert result.stop == "eos" and page.warnings == ()


def test_a_blank_region_of_a_written_page_is_read_as_empty() -> None:
    image = _one_line((1000, 1000), at=(50, 50))
    regions = {
        1: [
            Detection(label="text", box=Box(x0=0, y0=0, x1=1000, y1=200)),
            Detection(label="table", box=Box(x0=0, y0=500, x1=1000, y1=1000)),
        ]
    }
    engine = ScriptedEngine(lambda request: "<loc0000><loc0000><loc0100><loc1023> Received")
    with _client(engine) as client:
        document = client.convert(image, tasks=("text", "table"), regions=regions)
    (page,) = document.pages
    assert {r.prompt for r in engine.requests} == {"ocr"}  # the empty table region: no call
    text, table = page.results
    assert text.stop == "eos" and table.stop == "blank"
    assert page.warnings == ("page 1: a table region is blank (no ink), not read",)


def test_the_ink_of_a_page_is_measured_once_for_all_its_tasks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Measuring ink costs ~0.03 s a page at 150 dpi (0.7 s on a 4500 px page): a page read
    by several tasks, or by layout and then its regions, is measured once."""
    measured: list[tuple[int, int]] = []
    real = InkMap.of

    def counting(image: Image.Image) -> InkMap:
        measured.append(image.size)
        return real(image)

    monkeypatch.setattr(InkMap, "of", staticmethod(counting))
    engine = ScriptedEngine(lambda request: "text", resolution=448)
    with _client(engine) as client:
        client.convert(_one_line((900, 600), (100, 100)), tasks=["text", "caption", "table"])
        assert measured == [(900, 600)]
        measured.clear()
        regions = {1: [Detection(label="text", box=Box(x0=50, y0=50, x1=800, y1=300))]}
        client.convert(_one_line((900, 600), (100, 100)), tasks=["text"], regions=regions)
        assert measured == [(900, 600)]
