"""Corrections reach every format of an output folder (docs/corrections.md): real
``docvlm convert`` runs over PubTabNet crops, ``docvlm correct``, then each file checked
with its own tool (the XSDs, lxml, docling-core, pdftotext), and a rerun keeps them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from answered_convert import convert, pubtabnet_tables
from lxml import etree, html
from schemas import validate
from typer.testing import CliRunner

from docvlm import Document
from docvlm.cli import app
from parsers import parse_table

FORMATS = "md,txt,hocr,alto,page,docling,pdf"
ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"
PAGE = "{http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15}"


def _record(out: Path) -> tuple[Path, Document]:
    (folder,) = [p.parent for p in out.glob("*/document.json")]
    return folder, Document.model_validate_json((folder / "document.json").read_bytes())


def _pdf_text(path: Path) -> str:
    found = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    return found.stdout


@pytest.fixture()
def corrected(corpus: Path, tmp_path: Path) -> tuple[Path, dict[str, dict[str, str]], str]:
    """One PubTabNet table converted into a folder with every format, and a cell of it
    corrected by ``docvlm correct``; the output, the answers and the corrected text."""
    by_side, _ = pubtabnet_tables(corpus, tmp_path / "in", 1)
    answers = {"table html": by_side}
    ran = convert([str(tmp_path / "in"), "--task", "table", "--out", f"{tmp_path}/out/",
                   "--formats", FORMATS], answers, tmp_path)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    _, document = _record(tmp_path / "out")
    table = document.pages[0].results[0]
    assert table.task == "table" and table.table is not None
    old = next(c for c in table.table.cells if c.row == 1 and c.col == 0).text
    fixed = f"Zyxwv {old}"  # a word no table of the corpus holds
    line = {"sha256": document.sha256, "page": 1, "result": 0, "cell": [1, 0], "text": fixed}
    (tmp_path / "fix.jsonl").write_text(json.dumps(line) + "\n")
    result = CliRunner().invoke(
        app, ["correct", f"{tmp_path}/out/", str(tmp_path / "fix.jsonl"), "--by", "ann"]
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "out", answers, fixed


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
def test_a_corrected_cell_is_in_every_format_of_the_folder(
    corrected: tuple[Path, dict[str, dict[str, str]], str],
) -> None:
    from docling_core.types.doc import DoclingDocument

    out, answers, fixed = corrected
    folder, document = _record(out)
    result = document.pages[0].results[0]
    assert result.corrected and result.task == "table" and result.table is not None
    assert result.raw == next(iter(answers["table html"].values()))  # the model's own output
    assert fixed not in result.raw and parse_table(result.raw).grid()[1][0] != fixed
    assert result.table.grid()[1][0] == fixed
    assert document.tables[0].table is not None and document.tables[0].table.grid()[1][0] == fixed
    assert fixed in (folder / "table-p1-1.csv").read_text()
    assert fixed in html.fromstring((folder / "table-p1-1.html").read_text()).text_content()
    for name in ("document.md", "document.txt"):
        assert fixed in (folder / name).read_text(encoding="utf-8"), name
    alto = validate((folder / "alto/page-0001.xml").read_text(encoding="utf-8"), "alto-4-4.xsd")
    words = [s.get("CONTENT") for s in alto.iter(f"{ALTO}String")]
    assert fixed in words
    page = validate(
        (folder / "page/page-0001.xml").read_text(encoding="utf-8"), "pagecontent-2019-07-15.xsd"
    )
    assert fixed in [u.text for u in page.iter(f"{PAGE}Unicode")]
    hocr = etree.parse(str(folder / "hocr/page-0001.html"), etree.HTMLParser())
    assert fixed.split()[0] in "".join(hocr.getroot().itertext())
    docling = DoclingDocument.model_validate_json((folder / "document.docling.json").read_text())
    assert fixed in [cell.text for t in docling.tables for cell in t.data.table_cells]
    assert fixed.split()[0] in _pdf_text(folder / "document.pdf")
    log = [json.loads(line) for line in (out / "_corrections.jsonl").read_text().splitlines()]
    assert [(e["by"], e["after"], e["version"]) for e in log] == [("ann", fixed, 1)]
    assert log[0]["raw"] == result.raw and log[0]["before"] != fixed


def test_a_rerun_keeps_the_corrections_and_says_when_the_reading_changed(
    corrected: tuple[Path, dict[str, dict[str, str]], str], tmp_path: Path
) -> None:
    out, answers, fixed = corrected
    source = str(tmp_path / "in")
    again = convert([source, "--task", "table", "--out", f"{out}/", "--formats", FORMATS,
                     "--redo"], answers, tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr
    folder, document = _record(out)
    result = document.pages[0].results[0]
    assert result.corrected and result.table is not None and result.table.grid()[1][0] == fixed
    assert document.pages[0].warnings == ()  # the same reading: nothing to say
    assert fixed in _alto_words(folder)
    # a new reading (another model) writes another first row: the correction is kept, said
    side, raw = next(iter(answers["table html"].items()))
    changed = {"table html": {side: raw.replace("<td", "<td", 1).replace("</td>", "x</td>", 1)}}
    third = convert([source, "--task", "table", "--out", f"{out}/", "--formats", FORMATS,
                     "--redo"], changed, tmp_path)  # fmt: skip
    assert third.returncode == 0, third.stderr
    folder, document = _record(out)
    result = document.pages[0].results[0]
    assert result.raw == changed["table html"][side]
    assert result.table is not None and result.table.grid()[1][0] == fixed
    (warning,) = document.pages[0].warnings
    assert "result 0 cell 1,0" in warning and "kept over this reading" in warning
    assert fixed in _alto_words(folder)


def _alto_words(folder: Path) -> list[str | None]:
    tree = validate((folder / "alto/page-0001.xml").read_text(encoding="utf-8"), "alto-4-4.xsd")
    return [s.get("CONTENT") for s in tree.iter(f"{ALTO}String")]
