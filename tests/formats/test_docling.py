"""DoclingDocument: loads with docling-core, boxes and cells as the records say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scan_pages import TABLE, convert_scripted, ocr_output, scan_lines

from docvlm import Document, MoleculeResult, TableResult, TextResult

docling = pytest.importorskip("docling_core.types.doc")

SMILES = "C/C=C/C[C@H](N)C(=O)O"
TEXTS = ["Congress of the United States", "Begun and held at the City of Washington"]


def _converted(corpus: Path) -> Document:
    source = corpus / "pdfs" / "good_scans" / "pikepdf_congress.pdf"
    lines = scan_lines(TEXTS, 417, 634)
    respond = {"ocr": ocr_output(lines, 634), "table html": TABLE, "smiles": SMILES}
    return convert_scripted(source, 634, respond, ("text", "table", "molecule"), dpi=150)


def test_the_docling_document_round_trips_and_reads_like_the_page(corpus: Path) -> None:
    document = _converted(corpus)
    loaded = docling.DoclingDocument.model_validate_json(document.to_docling().model_dump_json())

    markdown = loaded.export_to_markdown()
    places = [markdown.index(text) for text in [*TEXTS, "| Drug", "| A ", SMILES]]
    assert places == sorted(places), markdown
    # two header rows become one (docling joins them), the body row follows
    assert "Dose - mg" in markdown and re.search(r"\| A +\| +10 \| +4 \|", markdown)

    (page,) = document.pages
    (item,) = loaded.pages.values()
    assert (item.size.width, item.size.height) == pytest.approx((200, 304), abs=0.5)
    # each line's provenance is its record box, in points from the bottom-left corner
    (text,) = (r for r in page.results if isinstance(r, TextResult))
    scale = 72 / (page.dpi or 72)
    for line, found in zip(text.lines, loaded.texts, strict=True):
        assert found.text == line.text
        (prov,) = found.prov
        assert prov.page_no == 1
        assert prov.bbox.coord_origin == docling.CoordOrigin.BOTTOMLEFT
        top_left = prov.bbox.to_top_left_origin(page_height=item.size.height)
        assert line.box is not None
        expected = (line.box.x0, line.box.y0, line.box.x1, line.box.y1)
        got = (top_left.l, top_left.t, top_left.r, top_left.b)
        assert got == pytest.approx([v * scale for v in expected], abs=0.01)


def test_tables_keep_spans_and_headers_and_molecules_their_smiles(corpus: Path) -> None:
    document = _converted(corpus)
    loaded = docling.DoclingDocument.model_validate_json(document.to_docling().model_dump_json())
    (table,) = loaded.tables
    assert (table.data.num_rows, table.data.num_cols) == (3, 3)
    cells = {c.text: c for c in table.data.table_cells}
    assert (cells["Drug"].row_span, cells["Drug"].col_span) == (2, 1)
    assert (cells["Dose"].row_span, cells["Dose"].col_span) == (1, 2)
    assert cells["Dose"].start_col_offset_idx == 1 and cells["Dose"].end_col_offset_idx == 3
    assert all(cells[t].column_header for t in ("Drug", "Dose", "mg", "n"))
    assert not any(cells[t].column_header or cells[t].row_header for t in ("A", "10", "4"))
    # docling builds its grid from the cells: the spanned slots hold the spanning cell
    assert [c.text for c in table.data.grid[1]] == ["Drug", "mg", "n"]
    assert [c.text for c in table.data.grid[0]] == ["Drug", "Dose", "Dose"]

    (picture,) = loaded.pictures
    assert picture.meta is not None and picture.meta.molecule is not None
    assert picture.meta.molecule.smi == SMILES
    assert picture.meta.molecule.created_by == "scripted"
    (molecule,) = (r for r in document.pages[0].results if isinstance(r, MoleculeResult))
    (prov,) = picture.prov
    assert prov.bbox.to_top_left_origin(304).r == pytest.approx(molecule.box.x1 * 72 / 150)
    assert any(isinstance(r, TableResult) for r in document.pages[0].results)
