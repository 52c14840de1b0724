"""The whole correction flow in headless Chromium (``docvlm view OUT --edit``): the review
queue opened and checked against ``docvlm review OUT --json``; the weakest page opened
from it; a line, a table cell, a SMILES (refused first, its text kept) and a kern score
corrected and the page marked reviewed; the queue and the suspects follow at once. Then
the folder's record and every format it holds carry the corrections, each read with its
own tool, and still do after the same conversion is run again.

The browser part runs once (the ``flow`` fixture, with a copy of the folder taken before
the rerun); each property is its own test, over both stages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_editors_browser import editor, saved, status, type_into
from test_viewer_browser import ROOT, SETTINGS, live, loaded, wait
from test_viewer_browser import browser as browser  # the module's Chromium fixture
from test_viewer_browser import pytestmark as pytestmark  # skipped without Chromium

from docvlm import Document
from docvlm.archive.output import Output
from docvlm.server import viewer_app
from tests.formats.schemas import validate

pytest.importorskip("rdkit")
pytest.importorskip("music21")

from editable import KERN, LINES, SMILES, converted_output
from lxml import etree, html
from selenium.webdriver.common.by import By

FORMATS = ("md", "txt", "hocr", "alto", "page", "docling", "pdf")
NEW_LINE = "Scheme 1. The product."
NEW_CELL = "CCCCAGTACACACGGAAACAT"
ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"
PAGE = "{http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15}"
STAGES = ("saved", "rerun")


def review_command(out: Path) -> list[dict[str, Any]]:
    """What the real ``docvlm review OUT --json`` prints, run in a subprocess."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "docvlm", "review", str(out), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    listed: list[dict[str, Any]] = json.loads(done.stdout)
    return listed


def shown_queue(driver: Any) -> list[tuple[int, int, int]]:
    """The queue as the page lists it: (document, page, result) of each item."""
    script = (
        "return [...document.querySelectorAll('#queue li')].map((li) =>"
        " [li.dataset.document, li.dataset.page, li.dataset.result].map(Number))"
    )
    return [tuple(item) for item in driver.execute_script(script)]


def places(items: list[dict[str, Any]], out: Path) -> list[tuple[int, int, int]]:
    """(document, page, result) of the command's items; the viewer numbers an output
    folder's documents in the order of their folders' names."""
    numbers = {d.source: n for n, d in enumerate(records(out))}
    return [(numbers[i["source"]], i["page"], i["result"]) for i in items]


def records(out: Path) -> list[Document]:
    files = sorted(out.glob("*/document.json"))
    return [Document.model_validate_json(f.read_bytes()) for f in files]


@dataclass
class Flow:
    """What the browser saw, and the folder after the saves and after the rerun."""

    folders: dict[str, Path]
    sha: str
    queue_before: list[tuple[int, int, int]]
    command_before: list[dict[str, Any]]
    queue_after: list[tuple[int, int, int]]
    suspects_after: list[tuple[int, int]]
    queue_rerun: list[tuple[int, int, int]]


@pytest.fixture(scope="module")
def flow(browser: Any, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Flow:
    folder = tmp_path_factory.mktemp("flow")
    shots = Path(os.environ.get("DOCVLM_SCREENSHOTS") or folder)
    out = converted_output(corpus, folder, FORMATS)
    command_before = review_command(out)
    with live(viewer_app(out, SETTINGS, edit=True)) as base:
        browser.get(base + "/#/review")
        wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-queue"))
        queue_before = shown_queue(browser)
        browser.find_element(By.CSS_SELECTOR, "#queue li").click()  # the weakest first
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".editor")) == 4)
        wait(browser, lambda d: loaded(d, d.find_element(By.ID, "page-image")))
        browser.save_screenshot(str(shots / "viewer-queue.png"))
        sha = browser.execute_script("return state.doc.sha256")
        correct_everything(browser, corpus, shots)
        browser.find_element(By.ID, "edit-reviewed").click()  # the page marked reviewed
        saved(browser, 5)
        assert browser.find_element(By.ID, "edit-reviewed").is_selected()
        wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-queue")
             == str(len(queue_before) - 4))  # fmt: skip
        queue_after = shown_queue(browser)
        browser.find_element(By.ID, "only-suspect").click()
        wait(browser, lambda d: not d.find_element(By.ID, "suspects").get_attribute("hidden"))
        wait(browser, lambda d: "Suspect results" in d.find_element(By.ID, "list-title").text)
        suspects_after = [
            (int(li.get_attribute("data-document")), int(li.get_attribute("data-page")))
            for li in browser.find_elements(By.CSS_SELECTOR, "#suspects li")
        ]
    saved_copy = folder / "saved"
    shutil.copytree(out, saved_copy)
    converted_output(corpus, folder, FORMATS)  # the same conversion, run again
    with live(viewer_app(out, SETTINGS)) as base:
        browser.get(base + "/#/review")
        wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-queue"))
        queue_rerun = shown_queue(browser)
    return Flow(
        {"saved": saved_copy, "rerun": out},
        str(sha),
        queue_before,
        command_before,
        queue_after,
        suspects_after,
        queue_rerun,
    )


def correct_everything(driver: Any, corpus: Path, shots: Path) -> None:
    """A line, a cell, a SMILES (refused once) and a score corrected: versions 1 to 4."""
    line = editor(driver, "text").find_element(By.CSS_SELECTOR, 'input[data-line="0"]')
    line.clear()
    line.send_keys(NEW_LINE)
    editor(driver, "text").find_element(By.CSS_SELECTOR, ".save-line").click()
    saved(driver, 1)
    wait(driver, lambda d: NEW_LINE in d.find_element(By.CSS_SELECTOR, ".lines").text)
    cell = editor(driver, "table").find_element(
        By.CSS_SELECTOR, 'input[data-row="1"][data-cell="1"]'
    )
    cell.clear()
    cell.send_keys(NEW_CELL)
    wait(driver, lambda d: NEW_CELL in editor(d, "table").find_element(
        By.CSS_SELECTOR, ".table-preview").text)  # fmt: skip
    editor(driver, "table").find_element(By.CSS_SELECTOR, ".save-table").click()
    saved(driver, 2)
    smiles = editor(driver, "molecule").find_element(By.CSS_SELECTOR, ".value-edit")
    type_into(driver, smiles, "c1ccc(-c2cc(")
    editor(driver, "molecule").find_element(By.CSS_SELECTOR, ".save-value").click()
    assert "does not parse as molecule" in status(driver, "refused")
    assert smiles.get_attribute("value") == "c1ccc(-c2cc("
    type_into(driver, smiles, SMILES)
    drawn = editor(driver, "molecule").find_element(By.CSS_SELECTOR, "img.preview")
    wait(driver, lambda d: drawn.is_displayed() and loaded(d, drawn))
    driver.execute_script("arguments[0].scrollIntoView({block: 'end'})", drawn)
    driver.save_screenshot(str(shots / "viewer-editors.png"))
    assert drawn.get_attribute("src").startswith("data:image/svg+xml")
    editor(driver, "molecule").find_element(By.CSS_SELECTOR, ".save-value").click()
    saved(driver, 3)
    score = editor(driver, "music").find_element(By.CSS_SELECTOR, ".value-edit")
    type_into(driver, score, (corpus / KERN).read_text())
    engraved = editor(driver, "music").find_element(By.CSS_SELECTOR, "img.preview")
    wait(driver, lambda d: engraved.is_displayed() and loaded(d, engraved))
    editor(driver, "music").find_element(By.CSS_SELECTOR, ".save-value").click()
    saved(driver, 4)


def folder_of(flow: Flow, stage: str) -> Path:
    """The corrected document's folder (the first scan's) at ``stage``."""
    (found,) = [
        f.parent
        for f in flow.folders[stage].glob("*/document.json")
        if Document.model_validate_json(f.read_bytes()).sha256 == flow.sha
    ]
    return found


def results(flow: Flow, stage: str) -> dict[str, Any]:
    document = Document.model_validate_json((folder_of(flow, stage) / "document.json").read_bytes())
    return {result.task: result for result in document.pages[0].results}


# --- the queue -----------------------------------------------------------------------


def test_the_queue_shows_docvlm_reviews_order(flow: Flow) -> None:
    out = flow.folders["rerun"]
    assert flow.queue_before == places(flow.command_before, out)
    assert flow.command_before[0]["reasons"] == ["length"]  # the SMILES cut at the limit
    assert flow.queue_before[0][0] == 0 and len(flow.queue_before) == 8


def test_after_the_saves_the_page_leaves_the_queue_and_the_suspects(flow: Flow) -> None:
    assert all(document != 0 for document, _, _ in flow.queue_after)
    assert flow.queue_after == [item for item in flow.queue_before if item[0] != 0]
    assert flow.suspects_after == [(1, 1)]  # the other scan's SMILES; ours was corrected


def test_after_the_rerun_the_reviewed_page_stays_out_of_the_queue(flow: Flow) -> None:
    out = flow.folders["rerun"]
    assert flow.queue_rerun == flow.queue_after
    assert flow.queue_rerun == places(review_command(out), out)
    assert Output.existing(out).corrections().reviewed(flow.sha, 1)


# --- the record and every format, after the saves and after the rerun ----------------


@pytest.mark.parametrize("stage", STAGES)
def test_the_record_holds_the_corrections(flow: Flow, stage: str, corpus: Path) -> None:
    from music21 import converter
    from rdkit import Chem

    found = results(flow, stage)
    assert all(r.corrected for r in found.values())
    assert [line.text for line in found["text"].lines] == [NEW_LINE, LINES[1]]
    assert found["text"].raw.endswith(LINES[1]) and LINES[0] in found["text"].raw  # the model's
    assert found["table"].table.grid()[1][1] == NEW_CELL
    smiles = found["molecule"].molecule.smiles
    assert Chem.MolToInchiKey(Chem.MolFromSmiles(smiles)) == inchikey(SMILES)
    corrected = converter.parseData(found["music"].score.musicxml, format="musicxml")
    assert pitches(corrected) == pitches(
        converter.parseData((corpus / KERN).read_text(), format="humdrum")
    )


@pytest.mark.parametrize("stage", STAGES)
def test_alto_page_and_hocr_hold_the_corrected_line(flow: Flow, stage: str) -> None:
    folder = folder_of(flow, stage)
    alto = validate((folder / "alto/page-0001.xml").read_text(encoding="utf-8"), "alto-4-4.xsd")
    lines = [
        " ".join(s.get("CONTENT") for s in t.iter(f"{ALTO}String"))
        for t in alto.iter(f"{ALTO}TextLine")
    ]
    assert NEW_LINE in lines and LINES[0] not in lines
    assert NEW_CELL in [s.get("CONTENT") for s in alto.iter(f"{ALTO}String")]
    page = validate(
        (folder / "page/page-0001.xml").read_text(encoding="utf-8"), "pagecontent-2019-07-15.xsd"
    )
    unicode = [u.text for u in page.iter(f"{PAGE}Unicode")]
    assert NEW_LINE in unicode and NEW_CELL in unicode and LINES[0] not in unicode
    hocr = etree.parse(str(folder / "hocr/page-0001.html"), etree.HTMLParser())
    hocr_lines = [
        " ".join(
            "".join(w.itertext()).strip() for w in line.iter() if w.get("class") == "ocrx_word"
        )
        for line in hocr.iter()
        if line.get("class") == "ocr_line"
    ]
    assert NEW_LINE in hocr_lines and LINES[0] not in hocr_lines


@pytest.mark.parametrize("stage", STAGES)
def test_docling_markdown_and_text_hold_the_corrections(flow: Flow, stage: str) -> None:
    from docling_core.types.doc import DoclingDocument

    folder = folder_of(flow, stage)
    docling = DoclingDocument.model_validate_json((folder / "document.docling.json").read_text())
    assert NEW_LINE in [item.text for item in docling.texts]
    assert NEW_CELL in [cell.text for t in docling.tables for cell in t.data.table_cells]
    for name in ("document.md", "document.txt"):
        text = (folder / name).read_text(encoding="utf-8")
        assert NEW_LINE in text and LINES[0] not in text and NEW_CELL in text, name


@pytest.mark.parametrize("stage", STAGES)
def test_the_tables_files_hold_the_corrected_cell(flow: Flow, stage: str) -> None:
    import csv

    folder = folder_of(flow, stage)
    (csv_file,) = folder.glob("table-p1-*.csv")
    rows = list(csv.reader(csv_file.read_text(encoding="utf-8").splitlines()))
    assert rows[1][1] == NEW_CELL
    cells = html.fromstring(csv_file.with_suffix(".html").read_text()).xpath("(//tr)[2]/td")
    assert cells[1].text_content() == NEW_CELL


@pytest.mark.parametrize("stage", STAGES)
def test_the_molecule_file_is_the_corrected_molecule(flow: Flow, stage: str) -> None:
    from rdkit import Chem

    (sdf,) = folder_of(flow, stage).glob("molecule-*.sdf")
    molecules = [m for m in Chem.SDMolSupplier(str(sdf)) if m is not None]
    assert [Chem.MolToInchiKey(m) for m in molecules] == [inchikey(SMILES)]


@pytest.mark.parametrize("stage", STAGES)
def test_the_score_file_is_the_corrected_score(flow: Flow, stage: str, corpus: Path) -> None:
    from music21 import converter

    (musicxml,) = folder_of(flow, stage).glob("music-*.musicxml")
    truth = converter.parseData((corpus / KERN).read_text(), format="humdrum")
    assert pitches(converter.parse(str(musicxml))) == pitches(truth)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
@pytest.mark.parametrize("stage", STAGES)
def test_the_searchable_pdf_holds_the_corrected_line(flow: Flow, stage: str) -> None:
    pdf = folder_of(flow, stage) / "document.pdf"
    found = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    text = " ".join(found.stdout.split())
    assert NEW_LINE in text and "prodnct" not in text


def inchikey(smiles: str) -> str:
    from rdkit import Chem

    key: str = Chem.MolToInchiKey(Chem.MolFromSmiles(smiles))
    return key


def pitches(score: Any) -> list[str]:
    return [p.nameWithOctave for n in score.recurse().notes for p in n.pitches]
