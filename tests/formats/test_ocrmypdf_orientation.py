"""``ocrmypdf --rotate-pages --deskew --plugin docvlm.ocrmypdf``: OCRmyPDF turns and
straightens pages by docvlm's measure (issue 28)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from docvlm.reading.orient import measure_orientation
from docvlm.reading.render import PageImage, load_pages

pytest.importorskip("ocrmypdf")
pytest.importorskip("pikepdf")

from docvlm.ocrmypdf import DocvlmOcrEngine

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scan(corpus: Path) -> Image.Image:
    image = Image.open(corpus / "pdfs/good_scans/ocrmypdf_linn.png").convert("L")
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.BOX)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_get_orientation_answers_as_tesseract_does(
    scan: Image.Image, tmp_path: Path, turns: int
) -> None:
    path = tmp_path / "page.png"
    (scan.rotate(90 * turns, expand=True) if turns else scan).save(path)
    found = DocvlmOcrEngine.get_orientation(path, None)  # type: ignore[arg-type]
    # Tesseract's "Orientation in degrees": a page turned a quarter counter-clockwise is 270
    assert found.angle == (360 - 90 * turns) % 360
    assert found.confidence >= 14.0  # OCRmyPDF's default --rotate-pages-threshold


def test_get_deskew_is_the_turn_that_straightens_the_page(
    scan: Image.Image, tmp_path: Path
) -> None:
    flat = tmp_path / "flat.png"
    scan.save(flat)
    skewed = tmp_path / "skewed.png"
    scan.rotate(3.0, Image.Resampling.BICUBIC, True, fillcolor=255).save(skewed)
    base = DocvlmOcrEngine.get_deskew(flat, None)  # type: ignore[arg-type]
    # OCRmyPDF turns the page by it with Image.rotate (counter-clockwise): lines rising
    # by 3 degrees need -3
    assert DocvlmOcrEngine.get_deskew(skewed, None) - base == pytest.approx(-3.0, abs=0.2)  # type: ignore[arg-type]
    blank = tmp_path / "blank.png"
    Image.new("L", (800, 1000), 255).save(blank)
    assert DocvlmOcrEngine.get_deskew(blank, None) == 0.0  # type: ignore[arg-type]


def test_ocrmypdf_rotate_pages_turns_a_sideways_scan_upright(
    scan: Image.Image, tmp_path: Path
) -> None:
    source = tmp_path / "sideways.pdf"
    scan.rotate(90, expand=True).save(source, resolution=150.0)
    out = tmp_path / "out.pdf"
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(Path(__file__).parent)])
    run = subprocess.run(
        [sys.executable, "-m", "ocrmypdf", "--plugin", "docvlm.ocrmypdf",
         "--docvlm-engine", "scripted_ocr:factory", "--rotate-pages", "--deskew",
         "--output-type", "pdf", str(source), str(out)],
        capture_output=True, text=True, timeout=300, env=environment,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (page,) = [p for p in load_pages(out, dpi=150) if isinstance(p, PageImage)]
    found = measure_orientation(page.image)  # the page as a viewer shows it
    assert (found.rotation, found.confidence >= 0.5) == (0, True), found.note
