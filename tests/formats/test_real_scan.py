"""A held-out real scan through every format: text, positions and schema validity.

The scan is a financial-report page (FinTabNet, via docling-ibm-models' tests) with its
own OCR's 68 lines; a scripted text model writes those lines with ``<loc>`` boxes and a
scripted table model writes its second table, so the record comes from the real parse
path. Each format is read back with its own tools (lxml, the official XSDs) and its text
and boxes are compared with the record's, converted to the format's units.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from format_pages import SCAN, SCAN_CELLS, SCAN_TABLE, convert_scan, scan_lines
from lxml import etree
from PIL import Image
from schemas import validate

from docvlm import Document, TableResult, TextResult
from docvlm.formats.alto import ALTO
from docvlm.formats.hocr import XHTML
from docvlm.formats.order import reading_order
from docvlm.formats.page_xml import PAGE
from parsers import Box

Record = list[tuple[str, Box]]
Scan = tuple[Document, list[tuple[Box, str]]]


@pytest.fixture(scope="module")
def scan(corpus: Path) -> Scan:
    path = corpus / SCAN
    if not path.exists():
        pytest.skip(f"{SCAN} is missing from the corpus")
    truth = scan_lines(json.loads(Path(f"{path}_iocr.parse_format.json").read_text()))
    return convert_scan(Image.open(path), truth), truth


def _record(document: Document) -> Record:
    (text, _) = document.pages[0].results
    assert isinstance(text, TextResult)
    return [(line.text, line.box) for line in text.lines if line.box is not None]


def _read(document: Document) -> Record:
    """The record's lines in the reading order every format writes them in."""
    text = reading_order(document.pages[0])[0]
    return [(line.text, line.box) for line in text.lines]


def _near(box: tuple[float, float, float, float], record: Box, tolerance: float) -> bool:
    expected = (record.x0, record.y0, record.x1, record.y1)
    return all(abs(a - b) <= tolerance for a, b in zip(box, expected, strict=True))


def test_the_record_holds_the_scan_lines_where_they_are(scan: Scan) -> None:
    document, truth = scan
    record = _record(document)
    assert [text for text, _ in record] == [text for _, text in truth]
    # 1024 bins over the page's long side (1612 px): a box edge moves by at most 1.6 px
    pairs = zip(record, truth, strict=True)
    assert all(_near((b.x0, b.y0, b.x1, b.y1), box, 1.6) for (_, b), (box, _) in pairs)
    assert document.pages[0].width == 1237 and document.pages[0].height == 1612


def test_text_and_markdown_hold_every_line_in_order_and_the_table(scan: Scan) -> None:
    document, truth = scan
    text = document.to_text()
    blocks = reading_order(document.pages[0])
    assert [b.kind for b in blocks] == ["text", "table"]
    ordered = blocks[0].lines
    assert sorted(line.text for line in ordered) == sorted(t for _, t in truth)
    assert text.startswith("\n".join(line.text for line in ordered) + "\n\n")
    # one column: a line wholly above another comes first; on one row, left comes first
    # (two tall fragments of vertical text in the margin have no place to check)
    flat = [(i, line) for i, line in enumerate(ordered) if line.box.height < 40]
    assert len(flat) == len(ordered) - 2
    for i, line in flat:
        for j, other in flat:
            a, b = line.box, other.box
            same_row = min(a.y1, b.y1) - max(a.y0, b.y0) > 0.5 * min(a.height, b.height)
            if a.y1 <= b.y0 or (same_row and a.x1 <= b.x0):
                assert i < j, (line.text, other.text)
    markdown = document.to_markdown()
    assert markdown.startswith("<!-- page 1 -->\n")
    assert "| Average managed receivables | $3,909,627 | $3,640,057 | $3,170,485 |" in markdown
    assert "Average managed receivables\t$3,909,627\t$3,640,057\t$3,170,485" in text
    assert "Delinquencies. À credit card account is contractually delinquent" in markdown


def test_hocr_lines_carry_the_record_text_and_boxes(scan: Scan) -> None:
    document, _ = scan
    (hocr,) = document.to_hocr().values()
    root = etree.fromstring(hocr.encode(), etree.XMLParser(no_network=True))
    ns = {"x": XHTML}
    (page,) = root.findall(".//x:div[@class='ocr_page']", ns)
    assert "bbox 0 0 1237 1612" in page.get("title", "")
    found = [
        (" ".join("".join(line.itertext()).split()), _bbox(line.get("title", "")))
        for line in root.findall(".//x:div[@class='ocr_carea']//x:span[@class='ocr_line']", ns)
    ]
    record = _read(document)
    assert [text for text, _ in found] == [text for text, _ in record]
    assert all(_near(box, b, 0.5) for (_, box), (_, b) in zip(found, record, strict=True))
    words = root.findall(".//x:span[@class='ocrx_word']", ns)
    assert len(words) == len(record) + 11  # one word per line; the table's non-empty cells
    cells = root.findall(".//x:div[@class='ocr_table']//x:span[@class='ocr_line']", ns)
    assert ["".join(c.itertext()).strip() for c in cells][:4] == [
        "2007",
        "2006",
        "2005",
        SCAN_CELLS[1][0],
    ]


def _bbox(title: str) -> tuple[float, float, float, float]:
    match = re.search(r"bbox (\d+) (\d+) (\d+) (\d+)", title)
    assert match, title
    x0, y0, x1, y1 = (float(v) for v in match.groups())
    return x0, y0, x1, y1


def test_alto_validates_and_its_lines_sit_at_the_record_boxes(scan: Scan) -> None:
    document, _ = scan
    (alto,) = document.to_alto().values()
    tree = validate(alto, "alto-4-4.xsd")
    ns = {"a": ALTO}
    (page,) = tree.findall(".//a:Page", ns)
    assert (page.get("WIDTH"), page.get("HEIGHT")) == ("1237", "1612")
    assert tree.findtext(".//a:MeasurementUnit", namespaces=ns) == "pixel"
    lines = tree.findall(".//a:PrintSpace/a:TextBlock/a:TextLine", ns)
    record = _read(document)
    assert len(lines) == len(record)
    for line, (text, box) in zip(lines, record, strict=True):
        (string,) = line.findall("a:String", ns)
        assert string.get("CONTENT") == text
        x, y = float(line.get("HPOS", "")), float(line.get("VPOS", ""))
        w, h = float(line.get("WIDTH", "")), float(line.get("HEIGHT", ""))
        assert _near((x, y, x + w, y + h), box, 0.5)
    (table,) = tree.findall(".//a:ComposedBlock[@TYPE='table']", ns)
    cells = [s.get("CONTENT") for s in table.findall(".//a:String", ns)]
    assert cells == [text for row in SCAN_CELLS for text in row if text]


def test_page_xml_validates_with_lines_order_and_a_table_of_cells(scan: Scan) -> None:
    document, _ = scan
    (xml,) = document.to_page_xml().values()
    tree = validate(xml, "pagecontent-2019-07-15.xsd")
    ns = {"p": PAGE}
    page = tree.find(".//p:Page", ns)
    assert page is not None and page.get("imageWidth") == "1237"
    lines = tree.findall(".//p:Page/p:TextRegion/p:TextLine", ns)
    record = _read(document)
    assert [line.findtext("p:TextEquiv/p:Unicode", namespaces=ns) for line in lines] == [
        text for text, _ in record
    ]
    for line, (_, box) in zip(lines, record, strict=True):
        points = line.find("p:Coords", ns)
        assert points is not None
        xs_ys = [tuple(map(float, p.split(","))) for p in points.get("points", "").split()]
        x0, y0 = min(x for x, _ in xs_ys), min(y for _, y in xs_ys)
        x1, y1 = max(x for x, _ in xs_ys), max(y for _, y in xs_ys)
        assert _near((x0, y0, x1 + 1, y1 + 1), box, 0.5)  # points are pixels: edge - 1
    (table,) = tree.findall(".//p:TableRegion", ns)
    assert (table.get("rows"), table.get("columns")) == ("3", "4")
    corners = table.find("p:Coords", ns)
    assert corners is not None  # the table sits where its cells are, not on the whole page
    x0, y0 = (float(v) for v in corners.get("points", "").split()[0].split(","))
    assert abs(x0 - SCAN_TABLE.x0) <= 2 and abs(y0 - SCAN_TABLE.y0) <= 2
    roles = table.findall("p:TextRegion/p:Roles/p:TableCellRole", ns)
    assert len(roles) == 12
    header = [r.get("header") for r in roles if r.get("rowIndex") == "0"]
    assert header == ["true"] * 4
    order = [r.get("regionRef") for r in tree.findall(".//p:RegionRefIndexed", ns)]
    regions = [r.get("id") for r in page if r.tag.endswith("Region")]
    assert order == regions and len(order) == 2
    result = document.pages[0].results[1]
    assert isinstance(result, TableResult) and result.table is not None
    (cell,) = [c for c in result.table.cells if c.row == 1 and c.col == 1]
    region = table.findall("p:TextRegion", ns)[5]
    assert region.findtext("p:TextEquiv/p:Unicode", namespaces=ns) == cell.text == "$3,909,627"
