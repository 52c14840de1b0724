"""The model reads pages upright and straight; records keep the scan's pixels (issue 28)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import Image

from docvlm import DocVLM, Settings
from docvlm.engines import Request
from docvlm.results import Page, TextResult
from docvlm.testing import ScriptedEngine
from parsers import Box

ANSWER = "<loc0100><loc0100><loc0200><loc0900> a line of text"


@pytest.fixture(scope="module")
def scan(corpus: Path) -> Image.Image:
    """A real 300 dpi scan brought to 150 dpi, as a PDF page would be rendered."""
    image = Image.open(corpus / "pdfs/good_scans/ocrmypdf_linn.png").convert("RGB")
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.BOX)


def _convert(image: Image.Image, **options: object) -> tuple[Page, list[Request]]:
    engine = ScriptedEngine(lambda request: ANSWER)
    client = DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="scripted")
    document = client.convert(image, **options)  # type: ignore[arg-type]
    return document.pages[0], engine.requests


def _boxes(page: Page) -> list[Box]:
    return [ln.box for r in page.results if isinstance(r, TextResult) for ln in r.lines if ln.box]


def _turned_box(box: Box, turns: int, width: int, height: int) -> Box:
    """``box`` of an upright ``width`` x ``height`` page, on the page turned counter-clockwise
    by ``turns`` quarter turns (as ``Image.rotate(90 * turns, expand=True)`` turns it)."""
    for _ in range(turns):  # one quarter counter-clockwise: (x, y) -> (y, W - x)
        box = Box(x0=box.y0, y0=width - box.x1, x1=box.y1, y1=width - box.x0)
        width, height = height, width
    return box


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_turned_scan_is_read_as_the_upright_one(scan: Image.Image, turns: int) -> None:
    upright, upright_requests = _convert(scan)
    page, requests = _convert(scan.rotate(90 * turns, expand=True))
    # the model was handed the upright page: the very same crops
    assert len(requests) == len(upright_requests) > 1
    assert [r.image.tobytes() for r in requests] == [r.image.tobytes() for r in upright_requests]
    # the record says what was done, in the scan's own pixels
    assert (page.rotation, page.skew) == (90 * turns, 0.0)
    assert page.orientation_confidence is not None and page.orientation_confidence >= 0.5
    assert any(f"turned {90 * turns}° clockwise" in w for w in page.warnings)
    assert (page.width, page.height) == scan.rotate(90 * turns, expand=True).size
    expected = [_turned_box(b, turns, scan.width, scan.height) for b in _boxes(upright)]
    found = _boxes(page)
    assert len(found) == len(expected) > 1
    for got, want in zip(sorted(found, key=_key), sorted(expected, key=_key), strict=True):
        assert (got.x0, got.y0, got.x1, got.y1) == pytest.approx(
            (want.x0, want.y0, want.x1, want.y1), abs=1.0
        )


def _key(box: Box) -> tuple[float, float]:
    return (round(box.y0), round(box.x0))


def test_no_orient_reads_the_page_as_it_lies(scan: Image.Image) -> None:
    turned = scan.rotate(90, expand=True)
    page, requests = _convert(turned, orient=False)
    _, upright_requests = _convert(scan)
    assert (page.rotation, page.skew, page.orientation_confidence) == (0, 0.0, None)
    assert [r.image.tobytes() for r in requests] != [r.image.tobytes() for r in upright_requests]
    assert not any("turned" in w for w in page.warnings)


def test_a_skewed_scan_is_straightened_and_its_lines_outlined_on_it(scan: Image.Image) -> None:
    upright, _ = _convert(scan)
    skewed = scan.rotate(6.0, Image.Resampling.BICUBIC, expand=True, fillcolor="white")
    page, _ = _convert(skewed)
    assert page.rotation == 0
    assert page.skew - upright.skew == pytest.approx(6.0, abs=0.2)
    assert any("straightened by +6" in w for w in page.warnings)
    # each line's outline on the scan is a rectangle turned by the skew, within its box
    # (boxes cut by the page's edge are not whole rectangles)
    inside = [
        b
        for b in _boxes(page)
        if b.x0 > 0 and b.x1 < page.width and b.y0 > 0 and b.y1 < page.height
    ]
    assert len(inside) > 5
    for box in inside:
        corners = page.outline(box)
        (x0, y0), (x1, y1), _, (x3, y3) = corners
        assert math.degrees(math.atan2(y0 - y1, x1 - x0)) == pytest.approx(page.skew, abs=0.01)
        assert math.degrees(math.atan2(x3 - x0, y3 - y0)) == pytest.approx(page.skew, abs=0.01)
        for x, y in corners:
            assert box.x0 - 0.01 <= x <= box.x1 + 0.01 and box.y0 - 0.01 <= y <= box.y1 + 0.01


@pytest.mark.parametrize("turns", [1, 3])
def test_outlines_follow_a_quarter_turn(scan: Image.Image, turns: int) -> None:
    page, _ = _convert(scan.rotate(90 * turns, expand=True))
    box = _boxes(page)[0]
    (x0, y0), (x1, y1), _, _ = page.outline(box)
    # the line runs up the scan (turned counter-clockwise) or down it (clockwise)
    assert (x1 - x0, (y1 - y0) > 0) == (pytest.approx(0, abs=0.01), turns == 3)


def test_a_blank_page_and_a_photo_are_read_as_they_lie(corpus: Path) -> None:
    photo = Image.open(corpus / "pdfs/images/pillow_hopper_g4_500.tif").convert("RGB")
    for image in (Image.new("RGB", (1275, 1650), "white"), photo.rotate(90, expand=True)):
        page, _ = _convert(image)
        assert (page.rotation, page.skew) == (0, 0.0)
        assert page.orientation_confidence is not None and page.orientation_confidence < 0.5


def test_convert_many_records_the_same_turn(scan: Image.Image, tmp_path: Path) -> None:
    path = tmp_path / "turned.png"
    scan.rotate(270, expand=True).save(path)
    single, _ = _convert(Image.open(path).convert("RGB"))
    engine = ScriptedEngine(lambda request: ANSWER)
    client = DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="scripted")
    (document,) = list(client.convert_many([path]))
    page = document.pages[0]
    assert (page.rotation, page.skew) == (single.rotation, single.skew) == (270, 0.0)
    assert _boxes(page) == _boxes(single)
