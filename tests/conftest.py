from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPUS = ROOT.parent / "shared" / "corpus"
#: The public fixtures kept in the repository (a subset of the shared corpus, same layout).
BUNDLED_CORPUS = ROOT / "tests" / "data" / "corpus"
CORPUS = Path(
    os.environ.get("DOCVLM_TEST_CORPUS")
    or (SHARED_CORPUS if SHARED_CORPUS.is_dir() else BUNDLED_CORPUS)
).resolve()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The full shared corpus when present, else the bundled subset (tests/data/corpus)."""
    return CORPUS


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint directory written by docvlm.testing (random weights)."""
    pytest.importorskip("torch")
    from docvlm.testing import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt", resolution=224)


def scribbled(size: tuple[int, int], paper: str = "white", ink: str = "black") -> Image.Image:
    """A page written all over (a word every 60 x 24 px): every tile and region has ink,
    so none is skipped as blank (``docvlm.reading.ink``)."""
    image = Image.new("RGB", size, paper)
    draw = ImageDraw.Draw(image)
    for y in range(2, size[1], 24):
        for x in range(2, size[0], 60):
            draw.text((x, y), "word", fill=ink)
    return image


def page_image(number: int, size: tuple[int, int] = (850, 1100)) -> Image.Image:
    """A scan-like page: a heading, a small ruled table and lines of text down to the foot
    and across the width (every text tile has ink, so none is skipped as blank)."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((60, 50), f"Page {number}: results of the assay", fill="black")
    for row, y in enumerate(y for y in range(100, size[1] - 30, 22) if not 400 < y < 560):
        for x in range(60, size[0] - 60, 240):
            draw.text((x, y), f"line {row} of page {number} with words", fill="black")
    for r in range(4):
        for c in range(3):
            draw.rectangle(
                (60 + c * 120, 420 + r * 30, 180 + c * 120, 450 + r * 30), outline="black"
            )
            draw.text((66 + c * 120, 428 + r * 30), f"{r}.{c}", fill="black")
    return image


@pytest.fixture()
def make_pdf(tmp_path: Path) -> Callable[[int], Path]:
    """Write a PDF of ``n`` scanned-looking pages (images, as a scanner makes them)."""

    def make(n: int = 3, name: str = "scan.pdf") -> Path:
        pages = [page_image(i + 1) for i in range(n)]
        path = tmp_path / name
        pages[0].save(path, "PDF", resolution=100.0, save_all=True, append_images=pages[1:])
        return path

    return make
