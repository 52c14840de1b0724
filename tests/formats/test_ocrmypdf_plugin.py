"""``ocrmypdf --plugin docvlm.ocrmypdf``: OCRmyPDF runs with docvlm as its OCR engine."""

from __future__ import annotations

import os
import re
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


def _ocrmypdf(tmp_path: Path, source: Path, *options: str, **variables: str) -> tuple[Path, str]:
    out, run = _run(tmp_path, source, *options, **variables)
    assert run.returncode == 0, run.stderr[-3000:]
    return out, run.stderr


def _run(
    tmp_path: Path, source: Path, *options: str, **variables: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path / "out.pdf"
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(Path(__file__).parent)])
    environment["DOCVLM_TEXT_CHECKPOINT"] = "from-the-environment"
    environment.update(variables)
    run = subprocess.run(
        [sys.executable, "-m", "ocrmypdf", "--plugin", "docvlm.ocrmypdf",
         "--docvlm-engine", "scripted_ocr:factory", "--sidecar", str(tmp_path / "text.txt"),
         *options, str(source), str(out)],
        capture_output=True, text=True, timeout=300, env=environment,
    )  # fmt: skip
    return out, run


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
    out, log = _ocrmypdf(tmp_path, source, "--output-type", "pdf")
    # without --docvlm-checkpoint, DOCVLM_TEXT_CHECKPOINT chooses it
    _check_text_layer(out, source, "from-the-environment")
    sidecar = (tmp_path / "text.txt").read_text(encoding="utf-8")
    expected = [text for _, text in lines("from-the-environment")]
    assert [line for line in sidecar.splitlines() if line.strip()] == expected
    # the load and each page are logged as they happen, the page under its number
    progress = [line for line in log.splitlines() if "docvlm: " in line]
    assert progress[0] == "    1 docvlm: loading the text model from-the-environment"
    assert re.fullmatch(r"    1 docvlm: model loaded in \d+\.\d s", progress[1])
    assert progress[2] == "    1 docvlm: reading (up to 2048 tokens)"
    assert re.fullmatch(rf"    1 docvlm: read in \d+\.\d s, {len(expected)} line\(s\)", progress[3])
    assert len(progress) == 4  # nothing was cut


def test_the_token_budget_reaches_the_model_and_a_cut_page_is_flagged(
    corpus: Path, tmp_path: Path
) -> None:
    source = corpus / "pdfs" / "good_scans" / "pikepdf_congress.pdf"
    options = ("--output-type", "pdf", "--docvlm-max-new-tokens", "8")
    out, log = _ocrmypdf(tmp_path, source, *options)
    (page,) = pdftotext_words(out)  # the text layer holds what fitted in 8 tokens
    first = lines("from-the-environment")[0][1]
    assert " ".join(w.text for w in page.words) == first
    sidecar = (tmp_path / "text.txt").read_text(encoding="utf-8")
    assert [line for line in sidecar.splitlines() if line.strip()] == [first]
    assert "    1 docvlm: reading (up to 8 tokens)" in log.splitlines()
    assert (
        "    1 docvlm: cut at the 8-token limit: the page's text may be incomplete "
        "(--docvlm-max-new-tokens)" in log.splitlines()
    )


@pytest.mark.parametrize(
    ("options", "variables", "message"),
    [
        ((), {"DOCVLM_DEVICE": "tpu"}, "bad setting DOCVLM_DEVICE='tpu': Input should be"),
        (("--docvlm-max-new-tokens", "0"), {}, "max_new_tokens"),
    ],
)
def test_a_bad_setting_or_budget_stops_before_any_page(
    corpus: Path, tmp_path: Path, options: tuple[str, ...], variables: dict[str, str], message: str
) -> None:
    source = corpus / "pdfs" / "good_scans" / "pikepdf_congress.pdf"
    out, run = _run(tmp_path, source, "--output-type", "pdf", *options, **variables)
    assert run.returncode != 0 and not out.exists()
    assert message in run.stderr and "Traceback" not in run.stderr
    assert "docvlm: reading" not in run.stderr


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
