"""``ocrmypdf --plugin docvlm.ocrmypdf``: OCRmyPDF runs with docvlm as its OCR engine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scan_pages import TOLERANCE, pdftotext_words
from scripted_ocr import lines

pytest.importorskip("ocrmypdf")
pikepdf = pytest.importorskip("pikepdf")
pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")

ROOT = Path(__file__).resolve().parents[2]


def _ocrmypdf(tmp_path: Path, source: Path, *options: str) -> tuple[Path, str]:
    out = tmp_path / "out.pdf"
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(Path(__file__).parent)])
    environment["DOCVLM_TEXT_CHECKPOINT"] = "from-the-environment"
    run = subprocess.run(
        [sys.executable, "-m", "ocrmypdf", "--plugin", "docvlm.ocrmypdf",
         "--docvlm-engine", "scripted_ocr:factory", "--sidecar", str(tmp_path / "text.txt"),
         *options, str(source), str(out)],
        capture_output=True, text=True, timeout=300, env=environment,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return out, run.stderr


def _check_text_layer(out: Path, source: Path, checkpoint: str) -> None:
    (page,) = pdftotext_words(out)
    side = max(page.width, page.height)  # the square frame's side, in points
    for (x0, y0, x1, y1), text in lines(checkpoint):
        top, bottom = y0 * side, y1 * side
        words = sorted(
            (w for w in page.words if top <= (w.box.y0 + w.box.y1) / 2 <= bottom),
            key=lambda w: w.box.x0,
        )
        assert [w.text for w in words] == text.split()
        assert abs(words[0].box.x0 - x0 * side) <= TOLERANCE * page.width
        assert abs(words[-1].box.x1 - x1 * side) <= TOLERANCE * page.width
    with pikepdf.open(out) as written, pikepdf.open(source) as original:
        (new,) = written.pages[0].get_images().values()
        (old,) = original.pages[0].get_images().values()
        assert new.Width == old.Width and new.Height == old.Height


def test_ocrmypdf_writes_docvlm_text_into_the_pdf(corpus: Path, tmp_path: Path) -> None:
    source = corpus / "pdfs" / "good_scans" / "pikepdf_congress.pdf"
    out, _log = _ocrmypdf(tmp_path, source, "--output-type", "pdf")
    # without --docvlm-checkpoint, DOCVLM_TEXT_CHECKPOINT chooses it
    _check_text_layer(out, source, "from-the-environment")
    sidecar = (tmp_path / "text.txt").read_text(encoding="utf-8")
    expected = [text for _, text in lines("from-the-environment")]
    assert [line for line in sidecar.splitlines() if line.strip()] == expected


@pytest.mark.skipif(shutil.which("gs") is None, reason="PDF/A output needs Ghostscript")
def test_ocrmypdf_pdfa_output_keeps_the_text_layer(corpus: Path, tmp_path: Path) -> None:
    source = corpus / "pdfs" / "good_scans" / "pikepdf_congress.pdf"
    out, _log = _ocrmypdf(tmp_path, source, "--docvlm-checkpoint", "./my-ocr")
    _check_text_layer(out, source, "./my-ocr")  # the option wins over the environment
    with pikepdf.open(out) as written:
        assert "pdfaid" in str(written.open_metadata())
        assert "docvlm" in str(written.docinfo.get("/Creator", ""))


def test_a_bad_engine_name_is_reported_before_any_page(corpus: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ocrmypdf", "--plugin", "docvlm.ocrmypdf",
         "--docvlm-engine", "no_such_module:factory", "--output-type", "pdf",
         str(corpus / "pdfs" / "good_scans" / "pikepdf_congress.pdf"), str(tmp_path / "o.pdf")],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert run.returncode != 0
    assert "--docvlm-engine 'no_such_module:factory': cannot import it" in run.stderr
    assert not (tmp_path / "o.pdf").exists()
