"""The viewer in a real browser: Debian's headless Chromium, driven through chromedriver.

Skipped only where Chromium is absent (``.ci/run`` installs it). Screenshots go to a
temporary folder, or to ``$DOCVLM_SCREENSHOTS`` (docs/images for the docs:
``DOCVLM_SCREENSHOTS=docs/images pytest tests/server/test_viewer_browser.py``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from editable import page_canvas
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and DRIVER.exists()),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)
pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver")

import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from docvlm import Document, Page, Settings  # noqa: E402
from docvlm.engines import Request  # noqa: E402
from docvlm.results import MoleculeResult, MusicResult, TableResult, TextResult  # noqa: E402
from docvlm.server import service_app, viewer_app  # noqa: E402
from docvlm.testing import ScriptedEngine  # noqa: E402
from parsers import Box, box_to_tokens, parse_smiles  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings(device="cpu", render_timeout=None)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1500,1700",
)


@contextmanager
def live(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free local port, in a thread."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(DRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture()
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DOCVLM_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 60) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        data: bytes = response.read()
    return data


def loaded(driver: Any, image: Any) -> bool:
    return bool(
        driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", image
        )
    )


# --- a stand-in model that reads the sample page (examples/make_sample.py) -------------

TITLE = "1. Yield of the coupling step"
BODY = [
    TITLE,
    "Samples were measured three times at room temperature.",
    "The table gives the mean yield and its standard deviation.",
    "Values below the detection limit are marked n.d.",
]
ROWS = [
    ("Catalyst", "Yield (%)", "SD"),
    ("Pd(OAc)2", "82", "2.1"),
    ("PdCl2", "64", "3.4"),
    ("none", "n.d.", "-"),
]


def sample_page(path: Path) -> Path:
    """A one-page scan made by the example script that makes examples/sample.pdf."""
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "examples/make_sample.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._page(TITLE, ROWS).save(path, "PDF", resolution=150.0)
    return path


def dark_lines(image: Image.Image) -> list[Box]:
    """Boxes of the text lines of a crop, by the rows and columns holding dark pixels."""
    gray = image.convert("L")
    width, height = gray.size
    pixels = gray.load()
    rows = [y for y in range(height) if any(pixels[x, y] < 128 for x in range(0, width, 2))]
    lines: list[Box] = []
    start = previous = None
    for y in [*rows, None]:
        if start is not None and (y is None or y - previous > 4):
            cols = [
                x
                for x in range(width)
                if any(pixels[x, yy] < 128 for yy in range(start, previous + 1))
            ]
            lines.append(Box(x0=cols[0], y0=start, x1=cols[-1] + 1, y1=previous + 1))
            start = None
        if y is not None:
            start = y if start is None else start
            previous = y
    return lines


def read_sample(request: Request) -> str:
    """What a fine-tuned PaliGemma 2 would answer for the sample page (scripted)."""
    side = request.image.width
    if request.prompt.startswith("detect"):  # the whole page: 1275 x 1650 at 150 dpi
        scale = side / 1650
        text = Box(x0=100, y0=95, x1=1210, y1=335).scale(scale, scale)
        table = Box(x0=104, y0=374, x1=1106, y1=610).scale(scale, scale)
        return f"{box_to_tokens(text, side, side)} text ; {box_to_tokens(table, side, side)} table"
    if request.prompt == "ocr":
        boxes = dark_lines(request.image)
        return "".join(
            f"{box_to_tokens(b, side, side)}{t}" for b, t in zip(boxes, BODY, strict=True)
        )
    if request.prompt == "table html":
        head = "".join(f"<td>{v}</td>" for v in ROWS[0])
        body = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>" for r in ROWS[1:])
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return ""


def test_upload_a_pdf_and_see_every_region(browser: Any, tmp_path: Path, shots: Path) -> None:
    pdf = sample_page(tmp_path / "sample-page.pdf")
    app = service_app(
        SETTINGS,
        checkpoint="sample-reader",
        engine_factory=lambda checkpoint, settings: ScriptedEngine(read_sample, resolution=2048),
        workers=1,
    )
    with live(app) as base:
        browser.get(base + "/")
        wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        form = browser.find_element(By.ID, "upload")
        assert form.is_displayed()
        form.find_element(By.ID, "file").send_keys(str(pdf))
        for value in ("layout", "table"):
            form.find_element(By.CSS_SELECTOR, f'input[name="tasks"][value="{value}"]').click()
        form.find_element(By.CSS_SELECTOR, 'input[name="layout"]').click()
        form.find_element(By.ID, "convert").click()
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results .result"))
        image = browser.find_element(By.ID, "page-image")
        wait(browser, lambda d: loaded(d, image))
        document = json.loads(fetch(base + "/v1/documents/0"))
        results = document["pages"][0]["results"]
        assert [r["task"] for r in results] == ["layout", "text", "table"]
        regions = browser.find_elements(By.CSS_SELECTOR, "#boxes .region")
        assert [r.get_attribute("data-task") for r in regions] == ["layout", "text", "table"]
        panels = browser.find_elements(By.CSS_SELECTOR, "#results .result")
        assert [p.get_attribute("data-task") for p in panels] == ["layout", "text", "table"]
        assert len(browser.find_elements(By.CSS_SELECTOR, "#boxes .detection")) == 2
        # each box sits where the result says, in page pixels scaled to the image shown
        shown = image.size["width"] / document["pages"][0]["width"]
        text_box = regions[1].rect
        frame = browser.find_element(By.ID, "page-frame").rect
        assert abs(text_box["x"] - frame["x"] - results[1]["box"]["x0"] * shown) < 3
        lines = panels[1].find_elements(By.CSS_SELECTOR, ".lines li")
        assert [li.text for li in lines] == BODY
        cells = panels[2].find_elements(By.CSS_SELECTOR, "table td, table th")
        assert [c.text for c in cells] == [v for row in ROWS for v in row]
        webdriver.ActionChains(browser).move_to_element(lines[1]).perform()
        assert browser.find_element(By.ID, "line-box").is_displayed()
        browser.save_screenshot(str(shots / "viewer-upload.png"))


# --- a prepared Document with a molecule, a table and a score ---------------------------

SMILES = "Fc1ccc(-c2cc(-c3ccccc3)n(-c3ccccc3)c2)cc1"  # MolScribe's example.png
HOSTILE = '<img src="x" onerror="document.body.dataset.pwned = 1">'


def prepared(corpus: Path, folder: Path) -> tuple[Path, Document]:
    """A page with a MolScribe depiction (SMILES from MolScribe), a PubTabNet table (its
    ground truth), a Humdrum score from the corpus, and a line of hostile text."""
    page_png = folder / "page.png"
    canvas, draw, table_raw = page_canvas(corpus)
    draw.text((70, 760), "(score region)", fill="gray")
    canvas.save(page_png)
    kern = (corpus / "music/kern/polish_holland_erste-menuet.krn").read_text()
    common = {"source": str(page_png), "page": 1, "checkpoint": "prepared", "prompt": "p"}
    frame = Box(x0=0, y0=0, x1=1200, y1=1200)
    results = (
        MoleculeResult.from_output(
            SMILES, frame, box=Box(x0=60, y0=60, x1=460, y1=360), confidence=0.91, **common
        ),
        TableResult.from_output(
            table_raw,
            frame,
            box=Box(x0=60, y0=420, x1=562, y1=692),
            confidence=0.62,
            stop="length",
            **common,
        ),
        MusicResult.from_output(
            kern, frame, box=Box(x0=60, y0=750, x1=1140, y1=1200), confidence=0.88, **common
        ),
        TextResult.from_output(
            f"<loc0060><loc0440><loc0090><loc0900>{HOSTILE}",
            frame,
            box=Box(x0=500, y0=60, x1=1140, y1=120),
            confidence=0.97,
            **common,
        ),
    )
    page = Page(number=1, width=1200, height=1600, status="ok", results=results)
    document = Document(source=str(page_png), status="success", pages=(page,))
    out = folder / "prepared.jsonl"
    out.write_text(document.model_dump_json() + "\n")
    return out, document


def test_molecule_table_and_score_are_drawn(
    browser: Any, corpus: Path, tmp_path: Path, shots: Path
) -> None:
    from rdkit import Chem

    out, document = prepared(corpus, tmp_path)
    with live(viewer_app(out, SETTINGS)) as base:
        browser.get(base + "/#/documents/0/pages/1")
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result")) == 4)
        molecule = browser.find_element(
            By.CSS_SELECTOR, '.result[data-task="molecule"] img.drawing'
        )
        score = browser.find_element(By.CSS_SELECTOR, '.result[data-task="music"] img.drawing')
        wait(browser, lambda d: loaded(d, molecule) and loaded(d, score))
        svg = fetch(molecule.get_attribute("src")).decode()
        assert "http://www.rdkit.org/xml" in svg
        atoms = {int(a) for a in re.findall(r"atom-(\d+)", svg)}
        assert len(atoms) == Chem.MolFromSmiles(SMILES).GetNumAtoms()
        facts = browser.find_element(By.CSS_SELECTOR, '.result[data-task="molecule"] .facts').text
        expected = parse_smiles(SMILES)
        assert expected.smiles in facts and expected.inchikey in facts
        engraved = fetch(score.get_attribute("src")).decode()
        assert "Engraved by Verovio" in engraved
        music = document.pages[0].results[2]
        assert isinstance(music, MusicResult) and music.score is not None
        heads = sum(len(n.pitches) for n in music.score.to_music21().recurse().notes)
        assert engraved.count('class="note"') == heads  # every note head music21 reads
        table = document.pages[0].results[1]
        assert isinstance(table, TableResult) and table.table is not None
        cells = browser.find_elements(By.CSS_SELECTOR, '.result[data-task="table"] td')
        assert [c.text for c in cells] == [c.text for c in table.table.cells]
        # model text is shown as text: nothing it holds became an element or ran
        line = browser.find_element(By.CSS_SELECTOR, '.result[data-task="text"] .lines li')
        assert line.text == HOSTILE
        assert browser.find_elements(By.CSS_SELECTOR, 'img[src="x"], #results script') == []
        assert browser.execute_script("return document.body.dataset.pwned") is None
        assert (
            "confidence 91%"
            in browser.find_element(By.CSS_SELECTOR, '.result[data-task="molecule"]').text
        )
        browser.save_screenshot(str(shots / "viewer-results.png"))
        # the suspect filter: only the table cut at its token limit is listed and shown
        browser.find_element(By.ID, "only-suspect").click()
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#suspects li"))
        listed = browser.find_elements(By.CSS_SELECTOR, "#suspects li")
        assert len(listed) == 1 and "length" in listed[0].text
        visible = [p for p in browser.find_elements(By.CSS_SELECTOR, ".result") if p.is_displayed()]
        assert [p.get_attribute("data-task") for p in visible] == ["table"]
