"""Orientation and skew measured from the page image (issue 28), on real scans turned and
skewed by known angles; pages the image cannot decide are left as they lie."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from docvlm.reading.orient import MIN_CONFIDENCE, measure_orientation
from docvlm.reading.render import PageImage, load_pages


def _page(path: Path, number: int = 1, dpi: int = 150) -> Image.Image:
    """Page ``number`` of ``path`` as docvlm renders it (an image scan brought to ``dpi``)."""
    for item in load_pages(path, pages=str(number), dpi=dpi):
        assert isinstance(item, PageImage)
        image = item.image
        if item.dpi is None and path.name == "ocrmypdf_linn.png":  # a 300 dpi scan
            image = image.resize((image.width // 2, image.height // 2), Image.Resampling.BOX)
        return image
    raise AssertionError(f"no page {number} in {path}")


def _turned(image: Image.Image, quarter_turns_ccw: int) -> Image.Image:
    """The page as a scanner would give it, turned counter-clockwise by 90° per turn."""
    return image.rotate(90 * quarter_turns_ccw, expand=True) if quarter_turns_ccw else image


def _skewed(image: Image.Image, degrees: float) -> Image.Image:
    """The page with its lines rising to the right by ``degrees``."""
    return image.rotate(degrees, Image.Resampling.BICUBIC, expand=True, fillcolor="white")


SCANS = [
    ("pdfs/good_scans/ocrmypdf_linn.png", 1),
    ("pdfs/good_scans/ocrmypdf_typewriter.png", 1),
    ("pdfs/rotated/ocrmypdf_cardinal.pdf", 1),
]


@pytest.mark.parametrize(("name", "number"), SCANS)
@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_each_quarter_turn_is_measured(corpus: Path, name: str, number: int, turns: int) -> None:
    page = _page(corpus / name, number)
    found = measure_orientation(_turned(page, turns))
    assert found.confidence >= MIN_CONFIDENCE, found.note
    assert found.rotation == 90 * turns, found.note


@pytest.mark.parametrize(
    ("turns", "degrees"), [(0, 4.0), (1, -2.5), (2, 7.3), (3, 12.0), (0, -0.6)]
)
def test_skew_is_the_applied_angle_within_a_fifth_of_a_degree(
    corpus: Path, turns: int, degrees: float
) -> None:
    # a real scan is already a little skewed: the copy is scored against its own page
    page = _page(corpus / "pdfs/good_scans/ocrmypdf_linn.png")
    upright = measure_orientation(page)
    found = measure_orientation(_skewed(_turned(page, turns), degrees))
    assert found.rotation == 90 * turns
    assert found.skew - upright.skew == pytest.approx(degrees, abs=0.2)
    assert found.skew_confidence >= MIN_CONFIDENCE


def test_the_rotated_corpus_scans_report_their_turn(corpus: Path) -> None:
    # cardinal.pdf's four pages are the same page baked in at 0, 90, 180 and 270
    path = corpus / "pdfs/rotated/ocrmypdf_cardinal.pdf"
    rotations = [measure_orientation(_page(path, n)).rotation for n in (1, 2, 3, 4)]
    assert (rotations[1] - rotations[0]) % 180 == 90  # the quarter-turned pages differ
    assert len(set(rotations)) == 4, rotations
    assert rotations[0] == 0


def test_a_blank_page_is_left_as_it_lies() -> None:
    found = measure_orientation(Image.new("RGB", (1275, 1650), (247, 245, 240)))
    assert (found.rotation, found.skew, found.confidence) == (0, 0.0, 0.0)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_a_photograph_is_unsure(corpus: Path, turns: int) -> None:
    photo = Image.open(corpus / "pdfs/images/pillow_hopper_g4_500.tif").convert("RGB")
    found = measure_orientation(_turned(photo, turns))
    assert found.confidence < MIN_CONFIDENCE, found.note


def test_a_few_words_in_capitals_are_unsure() -> None:
    from PIL import ImageDraw

    image = Image.new("RGB", (1275, 1650), "white")
    draw = ImageDraw.Draw(image)
    for row in range(3):
        draw.text((200, 300 + 60 * row), "TOTAL 1984 EXHIBIT", fill="black", font_size=36)
    for turns in range(4):
        assert measure_orientation(_turned(image, turns)).confidence < MIN_CONFIDENCE


def test_inspect_reports_the_measure_without_a_model(corpus: Path) -> None:
    from docvlm.reading.inspection import inspect_sources

    path = corpus / "pdfs/rotated/ocrmypdf_cardinal.pdf"
    (plain,) = inspect_sources([path])
    assert {p.rotation for p in plain.pages} == {None}  # nothing rendered by default
    (info,) = inspect_sources([path], orient=True)
    measured = [measure_orientation(_page(path, n)) for n in (1, 2, 3, 4)]
    assert [p.rotation for p in info.pages] == [m.rotation for m in measured]
    assert [p.orientation_confidence for p in info.pages] == [m.confidence for m in measured]
    assert all(p.skew == 0.0 for p in info.pages)  # cardinal.pdf is square to the page
