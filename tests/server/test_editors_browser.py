"""The correction editors in headless Chromium (``docvlm view OUT --edit``): rows,
columns and spans edited with a preview, a line's box moved, a save that meets another
person's, the token; the helpers the whole flow (test_review_browser.py) drives them with.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from test_viewer_browser import SETTINGS, live, wait
from test_viewer_browser import browser as browser  # the module's Chromium fixture
from test_viewer_browser import pytestmark as pytestmark  # skipped without Chromium
from test_viewer_browser import shots as shots  # the screenshots' folder fixture

from docvlm.archive.output import Output
from docvlm.server import viewer_app
from tests.formats.schemas import validate

pytest.importorskip("rdkit")
pytest.importorskip("music21")

from editable import editable_output, record
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By

NEW_LINE = "Scheme 1. The product."
NEW_CELL = "CCCCAGTACACACGGAAACAT"


def editor(driver: Any, task: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'.result[data-task="{task}"] .editor')


def status(driver: Any, expected: str) -> str:
    """The edit bar's message once it says ``expected`` (read in one call: the bar is
    drawn again after each save)."""
    seen = [""]

    def says(d: Any) -> bool:
        seen[0] = d.execute_script("return document.getElementById('edit-status')?.textContent")
        seen[0] = seen[0] or ""
        return expected in seen[0]

    with contextlib.suppress(TimeoutException):
        wait(driver, says, 30)
    assert expected in seen[0], seen[0]
    return seen[0]


def saved(driver: Any, version: int) -> None:
    """Saved at ``version``, and the page drawn again with its editors."""
    status(driver, f"saved: version {version}")
    script = (
        "return document.body.dataset.saving + ' ' +"
        " document.getElementById('edit-version')?.textContent + ' ' +"
        " document.querySelectorAll('.editor').length"
    )
    wait(driver, lambda d: d.execute_script(script) == f"false version {version} 4")


def type_into(driver: Any, field: Any, text: str) -> None:
    """A whole value set as a paste would, then the input event the editor listens to."""
    driver.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}))",
        field,
        text,
    )


def test_without_edit_the_page_has_no_editors(browser: Any, corpus: Path, tmp_path: Path) -> None:
    out = editable_output(corpus, tmp_path)
    with live(viewer_app(out, SETTINGS)) as base:
        browser.get(base + "/#/documents/0/pages/1")
        wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-editing"))
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result")) == 4)
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-editing") == "off"
        assert browser.find_elements(By.CSS_SELECTOR, ".editor, #edit-bar") == []


def test_table_rows_and_spans_and_a_line_box_are_edited_with_a_preview(
    browser: Any, corpus: Path, tmp_path: Path
) -> None:
    out = editable_output(corpus, tmp_path)
    before = record(out).pages[0].results
    table_before = before[1].table  # type: ignore[union-attr]
    assert table_before is not None and table_before.shape == (11, 2)
    with live(viewer_app(out, SETTINGS, edit=True)) as base:
        browser.get(base + "/#/documents/0/pages/1")
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".editor")) == 4)
        table = editor(browser, "table")

        def cell(row: int, position: int) -> Any:
            return table.find_element(
                By.CSS_SELECTOR, f'input[data-row="{row}"][data-cell="{position}"]'
            )

        def preview_says(text: str) -> None:
            wait(
                browser, lambda d: text in table.find_element(By.CSS_SELECTOR, ".preview-note").text
            )

        def tool(label: str) -> None:
            (found,) = [b for b in table.find_elements(By.TAG_NAME, "button") if b.text == label]
            found.click()

        cell(0, 0).click()
        tool("+ row below")
        preview_says("12 × 2")
        cell(1, 0).send_keys("Actb sense")
        cell(1, 1).send_keys("GGCTGTATTCCCCTCCATCG")
        cell(3, 0).click()
        tool("merge right")  # the model's row 2: its two cells made one
        cell(5, 1).click()
        tool("− column")
        preview_says("12 × 1")
        cell(0, 0).click()
        tool("+ column right")
        preview_says("12 × 2")
        cell(6, 0).click()
        tool("merge right")  # a cell over both columns again
        wait(browser, lambda d: 'colspan="2"' in table.get_attribute("innerHTML"))
        cell(7, 0).click()
        tool("merge right")
        cell(7, 0).click()
        tool("split")  # one cell again, the text kept in the first
        wait(
            browser, lambda d: len(table.find_elements(By.CSS_SELECTOR, 'input[data-row="7"]')) == 2
        )
        preview = table.find_element(By.CSS_SELECTOR, ".table-preview").text
        assert "Actb sense" in preview and "GGCTGTATTCCCCTCCATCG" not in preview  # column gone
        table.find_element(By.CSS_SELECTOR, ".save-table").click()
        saved(browser, 1)
        # a line's box moved (page pixels), its text kept: the result's lines written whole
        text = editor(browser, "text")
        line_box = before[0].lines[1].box  # type: ignore[union-attr]
        assert line_box is not None
        moved = {"x1": round(line_box.x1) - 40, "y1": round(line_box.y1) + 6}
        for side, value in moved.items():
            field = text.find_element(By.CSS_SELECTOR, f'li:nth-child(2) input[data-side="{side}"]')
            field.clear()
            field.send_keys(str(value))
        assert browser.find_element(By.ID, "line-box").is_displayed()
        text.find_elements(By.CSS_SELECTOR, ".save-line")[1].click()
        saved(browser, 2)
    fixed = record(out).pages[0].results
    grid = fixed[1].table  # type: ignore[union-attr]
    assert grid is not None and grid.shape == (12, 2)
    rows = grid.grid()
    assert rows[0][0] == table_before.grid()[0][0] and rows[1][0] == "Actb sense"
    assert rows[1][1] == "" and rows[2][0] == table_before.grid()[1][0]
    old = table_before.grid()
    assert rows[3][0] == f"{old[2][0]} {old[2][1]}"
    spans = {(c.row, c.col): c.colspan for c in grid.cells}
    assert spans[(6, 0)] == 2 and (6, 1) not in spans and rows[6][0] == old[5][0]
    assert rows[7] == [old[6][0], ""] and spans[(7, 0)] == spans[(7, 1)] == 1
    lines = fixed[0].lines  # type: ignore[union-attr]
    assert [x.text for x in lines] == [x.text for x in before[0].lines]  # type: ignore[union-attr]
    new_box = lines[1].box
    assert new_box is not None
    assert abs(new_box.x1 - moved["x1"]) <= 2 and abs(new_box.y1 - moved["y1"]) <= 2
    assert abs(new_box.x0 - line_box.x0) <= 2 and abs(new_box.y0 - line_box.y0) <= 2
    (alto,) = out.glob("*/alto/page-0001.xml")
    tree = validate(alto.read_text(encoding="utf-8"), "alto-4-4.xsd")
    ns = {"a": tree.getroot().nsmap[None]}
    (string,) = tree.xpath(f'//a:String[@CONTENT="{lines[1].text}"]', namespaces=ns)
    text_line = string.getparent()
    assert abs(int(text_line.get("HPOS")) + int(text_line.get("WIDTH")) - moved["x1"]) <= 3
    assert abs(int(text_line.get("VPOS")) + int(text_line.get("HEIGHT")) - moved["y1"]) <= 3


def test_a_save_that_meets_another_save_of_the_same_cell_keeps_the_text(
    browser: Any, corpus: Path, tmp_path: Path
) -> None:
    from docvlm.archive.edits import Correction

    out = editable_output(corpus, tmp_path)
    sha = str(record(out).sha256)
    with live(viewer_app(out, SETTINGS, edit=True)) as base:
        browser.get(base + "/#/documents/0/pages/1")
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".editor")) == 4)
        mine = editor(browser, "table").find_element(
            By.CSS_SELECTOR, 'input[data-row="2"][data-cell="1"]'
        )
        mine.clear()
        mine.send_keys("MINE")
        # meanwhile another person (docvlm correct, another tab) saves the same cell
        Output.existing(out).corrections().apply(
            Correction(sha256=sha, page=1, result=1, cell=(2, 1), text="THEIRS", version=0),
            by="bob",
        )
        editor(browser, "table").find_element(By.CSS_SELECTOR, ".save-table").click()
        said = status(browser, "changed meanwhile")
        assert "corrected by bob" in said and "version 1" in said
        assert mine.get_attribute("value") == "MINE"  # nothing typed is lost
        assert record(out).pages[0].results[1].table.grid()[2][1] == "THEIRS"  # type: ignore[union-attr]
        editor(browser, "table").find_element(By.CSS_SELECTOR, ".save-table").click()
        saved(browser, 2)  # sent again at the version now known: it goes over theirs
    assert record(out).pages[0].results[1].table.grid()[2][1] == "MINE"  # type: ignore[union-attr]
    log = [e.by for e in Output.existing(out).corrections().entries]
    assert log == ["bob", None]


def test_with_a_token_the_page_asks_for_it(browser: Any, corpus: Path, tmp_path: Path) -> None:
    out = editable_output(corpus, tmp_path)
    with live(viewer_app(out, SETTINGS, edit=True, token="s3cret")) as base:
        browser.get(base + "/#/documents/0/pages/1")
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".editor")) == 4)
        browser.find_element(By.ID, "edit-reviewed").click()
        assert "needs its token" in status(browser, "not saved")
        assert not browser.find_element(By.ID, "edit-reviewed").is_selected()
        browser.find_element(By.ID, "edit-token").send_keys("s3cret\n")
        browser.find_element(By.ID, "edit-reviewed").click()
        saved(browser, 1)
    assert Output.existing(out).corrections().reviewed(str(record(out).sha256), 1)
