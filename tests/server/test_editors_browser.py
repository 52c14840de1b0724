"""The correction editors in headless Chromium (``docvlm view OUT --edit``): a line, a
table cell, a SMILES and a kern score corrected and the page marked reviewed, through the
page as a person would; then the folder's record and its ALTO hold the corrected values.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from test_viewer_browser import SETTINGS, live, loaded, wait
from test_viewer_browser import browser as browser  # the module's Chromium fixture
from test_viewer_browser import pytestmark as pytestmark  # skipped without Chromium

from docvlm.archive.corrections import Corrections
from docvlm.server import viewer_app
from parsers import parse_smiles
from tests.formats.schemas import validate

pytest.importorskip("rdkit")
pytest.importorskip("music21")

from editable import KERN, SMILES, editable_output, record
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By

NEW_LINE = "Scheme 1. The product."
NEW_CELL = "CCCCAGTACACACGGAAACAT"


def editor(driver: Any, task: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'.result[data-task="{task}"] .editor')


def status(driver: Any, expected: str) -> str:
    def read(d: Any) -> str:  # one call: the bar is drawn again after each save
        text: str = d.execute_script("return document.getElementById('edit-status')?.textContent")
        return text or ""

    with contextlib.suppress(TimeoutException):
        wait(driver, lambda d: expected in read(d), 30)
    text = read(driver)
    assert expected in text, text
    return text


def type_into(driver: Any, field: Any, text: str) -> None:
    """A whole value set as a paste would, then the input event the editor listens to."""
    driver.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}))",
        field,
        text,
    )


def test_correct_a_line_a_cell_a_smiles_a_score_and_mark_reviewed(
    browser: Any, corpus: Path, tmp_path: Path
) -> None:
    from music21 import converter
    from rdkit import Chem

    out = editable_output(corpus, tmp_path)
    sha = record(out).sha256
    with live(viewer_app(out, SETTINGS, edit=True)) as base:
        browser.get(base + "/#/documents/0/pages/1")
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".editor")) == 4)
        # a text line: typed, saved, shown corrected
        line = editor(browser, "text").find_element(By.CSS_SELECTOR, 'input[data-line="0"]')
        line.clear()
        line.send_keys(NEW_LINE)
        editor(browser, "text").find_element(By.CSS_SELECTOR, ".save-line").click()
        status(browser, "version 1")
        wait(browser, lambda d: NEW_LINE in d.find_element(By.CSS_SELECTOR, ".lines").text)
        # a table cell: the live preview follows the typing, then the save
        cell = editor(browser, "table").find_element(
            By.CSS_SELECTOR, 'input[data-row="1"][data-cell="1"]'
        )
        cell.clear()
        cell.send_keys(NEW_CELL)
        wait(browser, lambda d: NEW_CELL in editor(d, "table").find_element(
            By.CSS_SELECTOR, ".table-preview").text)  # fmt: skip
        editor(browser, "table").find_element(By.CSS_SELECTOR, ".save-table").click()
        status(browser, "version 2")
        # a SMILES: refused while RDKit refuses it (the text stays), then the drawing, saved
        smiles = editor(browser, "molecule").find_element(By.CSS_SELECTOR, ".value-edit")
        type_into(browser, smiles, "c1ccc(-c2cc(")
        editor(browser, "molecule").find_element(By.CSS_SELECTOR, ".save-value").click()
        assert "does not parse as molecule" in status(browser, "refused")
        assert smiles.get_attribute("value") == "c1ccc(-c2cc("
        type_into(browser, smiles, SMILES)
        drawn = editor(browser, "molecule").find_element(By.CSS_SELECTOR, "img.preview")
        wait(browser, lambda d: drawn.is_displayed() and loaded(d, drawn))
        assert drawn.get_attribute("src").startswith("data:image/svg+xml")
        editor(browser, "molecule").find_element(By.CSS_SELECTOR, ".save-value").click()
        status(browser, "version 3")
        # a kern score: its engraving, then saved
        kern = (corpus / KERN).read_text()
        score = editor(browser, "music").find_element(By.CSS_SELECTOR, ".value-edit")
        type_into(browser, score, kern)
        engraved = editor(browser, "music").find_element(By.CSS_SELECTOR, "img.preview")
        wait(browser, lambda d: engraved.is_displayed() and loaded(d, engraved))
        editor(browser, "music").find_element(By.CSS_SELECTOR, ".save-value").click()
        status(browser, "version 4")
        # the page marked reviewed
        browser.find_element(By.ID, "edit-reviewed").click()
        status(browser, "version 5")
        assert browser.find_element(By.ID, "edit-reviewed").is_selected()
    results = record(out).pages[0].results
    assert all(r.corrected for r in results)
    assert results[0].lines[0].text == NEW_LINE  # type: ignore[union-attr]
    assert results[1].table.grid()[1][1] == NEW_CELL  # type: ignore[union-attr]
    molecule = results[2].molecule  # type: ignore[union-attr]
    assert molecule.smiles == parse_smiles(SMILES).smiles
    assert Chem.MolToInchiKey(Chem.MolFromSmiles(molecule.smiles)) == Chem.MolToInchiKey(
        Chem.MolFromSmiles(SMILES)
    )
    corrected = converter.parseData(results[3].score.musicxml, format="musicxml")  # type: ignore[union-attr]
    truth = converter.parseData(kern, format="humdrum")
    pitches = [p.nameWithOctave for n in truth.recurse().notes for p in n.pitches]
    assert [p.nameWithOctave for n in corrected.recurse().notes for p in n.pitches] == pitches
    assert Corrections(out).reviewed(str(sha), 1)
    (alto,) = out.glob("*/alto/page-0001.xml")
    tree = validate(alto.read_text(encoding="utf-8"), "alto-4-4.xsd")
    strings = tree.xpath("//a:String/@CONTENT", namespaces={"a": tree.getroot().nsmap[None]})
    assert NEW_LINE in strings and "Scheme 1. The prodnct." not in strings


def test_without_edit_the_page_has_no_editors(browser: Any, corpus: Path, tmp_path: Path) -> None:
    out = editable_output(corpus, tmp_path)
    with live(viewer_app(out, SETTINGS)) as base:
        browser.get(base + "/#/documents/0/pages/1")
        wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-editing"))
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result")) == 4)
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-editing") == "off"
        assert browser.find_elements(By.CSS_SELECTOR, ".editor, #edit-bar") == []
