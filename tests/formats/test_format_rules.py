"""Rules every format keeps: a table's box holds its cells, boxes stay on the page, one
rule for control characters, Markdown cells stay text, and no file for a document that
was not read. Each is checked with the format's own tools (the XSDs, lxml, docling-core,
a Markdown renderer)."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path

import pytest
from format_pages import SIDE, TWO_COLUMNS, _draw, convert_scripted
from lxml import etree, html
from schemas import validate

from docvlm import Document, Page, TableResult, TextResult
from docvlm.archive.sinks import FolderSink
from docvlm.formats.alto import ALTO
from docvlm.formats.common import clean_text, xml_text
from docvlm.formats.files import FORMATS, write_formats
from docvlm.formats.hocr import XHTML
from docvlm.formats.page_xml import PAGE
from docvlm.reading.assemble import make_page
from parsers import Box, TextLine, box_to_tokens

#: Cells a model may read off a page that Markdown would turn into markup.
HOSTILE = [
    ["<img src=x onerror=alert(1)>", "a | b", "back\\slash \\| pipe"],
    ["# heading", "*em* _u_ ~~s~~ `code`", "AT&amp;T [x](javascript:y)"],
]


def _edges(
    box: tuple[float, float, float, float], outer: tuple[float, float, float, float]
) -> bool:
    """Whether ``box`` (x0, y0, x1, y1) lies within ``outer``."""
    return outer[0] <= box[0] and outer[1] <= box[1] and box[2] <= outer[2] and box[3] <= outer[3]


def _bbox(title: str) -> tuple[float, float, float, float]:
    match = re.search(r"bbox (\d+) (\d+) (\d+) (\d+)", title)
    assert match, title
    x0, y0, x1, y1 = (float(v) for v in match.groups())
    return x0, y0, x1, y1


def _alto_box(element: etree._Element) -> tuple[float, float, float, float]:
    x, y = float(element.get("HPOS", "")), float(element.get("VPOS", ""))
    return x, y, x + float(element.get("WIDTH", "")), y + float(element.get("HEIGHT", ""))


def _points(element: etree._Element) -> list[tuple[int, int]]:
    coords = element.find(f"{{{PAGE}}}Coords")
    assert coords is not None
    return [(int(x), int(y)) for x, y in (p.split(",") for p in coords.get("points", "").split())]


def _table_document(cells: list[list[str]], placed: set[tuple[int, int]]) -> Document:
    """A table read by a scripted table model, ``coords`` on the cells in ``placed``."""
    rows, cols = len(cells), len(cells[0])
    frame = Box(x0=100, y0=300, x1=700, y1=500)
    dx, dy = frame.width / cols, frame.height / rows
    out = []
    for r, row in enumerate(cells):
        tds = []
        for c, text in enumerate(row):
            box = Box(
                x0=frame.x0 + c * dx,
                y0=frame.y0 + r * dy,
                x1=frame.x0 + (c + 1) * dx,
                y1=frame.y0 + (r + 1) * dy,
            )
            coords = f' coords="{box_to_tokens(box, SIDE, SIDE)}"' if (r, c) in placed else ""
            escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            tds.append(f"<td{coords}>{escaped}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    respond = {"table html": "<table>" + "".join(out) + "</table>"}
    return convert_scripted(_draw(TWO_COLUMNS), respond, ["table"])


def test_markdown_table_cells_stay_text_when_rendered() -> None:
    markdown_it = pytest.importorskip("markdown_it")
    document = _table_document(HOSTILE, set())
    (result,) = document.pages[0].results
    assert isinstance(result, TableResult) and result.table is not None
    assert result.table.grid() == HOSTILE  # the parser kept the cells' text as read
    renderer = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
    rendered = renderer.render(document.to_markdown())  # raw HTML on, as GitHub's is
    tree = html.fragment_fromstring(rendered, create_parent="div")
    tags = {element.tag for element in tree.iter() if isinstance(element.tag, str)}
    assert tags == {"div", "table", "thead", "tbody", "tr", "th", "td"}, rendered
    assert not [a for element in tree.iter() for a in element.attrib if a != "style"]
    cells = [[cell.text_content() for cell in row] for row in tree.iter("tr")]
    assert cells == HOSTILE


def test_a_tables_box_holds_all_its_cells_when_only_some_have_coords() -> None:
    document = _table_document([["a", "b", "c"], ["d", "e", "f"]], {(1, 2)})
    (result,) = document.pages[0].results
    assert isinstance(result, TableResult) and result.table is not None
    record = (result.box.x0, result.box.y0, result.box.x1, result.box.y1)
    tree = validate(document.to_alto()[1], "alto-4-4.xsd")
    (table,) = tree.findall(f".//{{{ALTO}}}ComposedBlock")
    assert _edges(_alto_box(table), record) and _edges(record, _alto_box(table))
    blocks = table.findall(f"{{{ALTO}}}TextBlock")
    assert len(blocks) == 6 and all(_edges(_alto_box(b), _alto_box(table)) for b in blocks)

    tree = validate(document.to_page_xml()[1], "pagecontent-2019-07-15.xsd")
    (region,) = tree.findall(f".//{{{PAGE}}}TableRegion")
    xs, ys = zip(*_points(region), strict=True)
    for cell in region.findall(f"{{{PAGE}}}TextRegion"):
        assert all(min(xs) <= x <= max(xs) and min(ys) <= y <= max(ys) for x, y in _points(cell))

    hocr = etree.fromstring(document.to_hocr()[1].encode())
    (div,) = hocr.findall(f".//{{{XHTML}}}div[@class='ocr_table']")
    lines = div.findall(f".//{{{XHTML}}}span[@class='ocr_line']")
    assert len(lines) == 6
    assert all(_edges(_bbox(line.get("title", "")), _bbox(div.get("title", ""))) for line in lines)

    pytest.importorskip("docling_core")
    (item,) = document.to_docling().tables
    page_height = document.pages[0].height
    outer = item.prov[0].bbox.to_top_left_origin(page_height)
    assert (outer.l, outer.t, outer.r, outer.b) == pytest.approx(record)
    boxes = [c.bbox.to_top_left_origin(page_height) for c in item.data.table_cells if c.bbox]
    assert len(boxes) == 1 and all(
        _edges((b.l, b.t, b.r, b.b), (outer.l, outer.t, outer.r, outer.b)) for b in boxes
    )


def _edge_page() -> Page:
    """A 300 x 200 page whose model wrote boxes past its right and bottom edges: cut to
    the page by the assembly, one squeezed to nothing on each edge."""
    lines = (
        TextLine(text="to the corner", box=Box(x0=150, y0=150, x1=340, y1=260)),
        TextLine(text="past the right", box=Box(x0=320, y0=10, x1=360, y1=30)),
        TextLine(text="past the bottom", box=Box(x0=10, y0=230, x1=90, y1=250)),
    )
    text = TextResult(
        source="x.png",
        page=1,
        box=Box(x0=0, y0=0, x1=400, y1=280),
        checkpoint="c",
        prompt="ocr",
        raw="",
        lines=lines,
    )
    return make_page(1, (300, 200), None, [text])


def test_boxes_cut_at_the_page_edge_stay_on_the_page() -> None:
    document = Document(source="x.png", status="success", pages=(_edge_page(),))
    tree = validate(document.to_alto()[1], "alto-4-4.xsd")
    placed = tree.findall(f".//{{{ALTO}}}PrintSpace//*[@HPOS]")
    assert len(placed) == 7  # a block, and each line with its string
    for element in placed:  # edges: the last pixel (HPOS + WIDTH - 1) is on the page
        x0, y0, x1, y1 = _alto_box(element)
        assert 0 <= x0 <= 299 and 0 <= y0 <= 199 and x0 < x1 <= 300 and y0 < y1 <= 200

    tree = validate(document.to_page_xml()[1], "pagecontent-2019-07-15.xsd")
    coords = tree.findall(f".//{{{PAGE}}}Coords/..")
    assert len(coords) == 4  # a region and its three lines
    for element in coords:  # points are pixels: 0..width-1, 0..height-1
        assert all(0 <= x <= 299 and 0 <= y <= 199 for x, y in _points(element))

    hocr = etree.fromstring(document.to_hocr()[1].encode())
    (page,) = hocr.findall(f".//{{{XHTML}}}div[@class='ocr_page']")
    assert _bbox(page.get("title", "")) == (0, 0, 300, 200)  # as Tesseract writes a page
    titled = [e for e in page.iter() if "bbox" in e.get("title", "") and e is not page]
    assert len(titled) == 8  # a block, its paragraph, three lines with a word each
    for element in titled:
        x0, y0, x1, y1 = _bbox(element.get("title", ""))
        assert 0 <= x0 <= 299 and 0 <= y0 <= 199 and x0 < x1 <= 300 and y0 < y1 <= 200


CONTROLS = "nul\x00 bell\x07 ff\x0c cr\r esc\x1b del\x7f nel\x85 tab\t"


def test_control_characters_follow_one_rule_in_every_format(tmp_path: Path) -> None:
    assert xml_text is clean_text  # the XML writers' name for it is the same rule
    expected = "nul\ufffd bell\ufffd ff\ufffd cr\ufffd esc\ufffd del\ufffd nel\ufffd tab\t"
    assert clean_text(CONTROLS + "\n") == expected + "\n"
    document = _table_document([["head", "cell"], [CONTROLS, "x"]], set())
    line = TextLine(text=CONTROLS, box=Box(x0=60, y0=40, x1=836, y1=70))
    text = TextResult(
        source="x.png",
        page=1,
        box=Box(x0=0, y0=0, x1=SIDE, y1=SIDE),
        checkpoint="c",
        prompt="ocr",
        raw="",
        lines=(line,),
    )
    (table,) = document.pages[0].results
    assert isinstance(table, TableResult) and table.table is not None
    # the parser made whitespace controls one space; the others are kept in the record
    assert table.table.grid()[1] == ["nul\x00 bell\x07 ff cr esc\x1b del\x7f nel tab", "x"]
    cell = "nul\ufffd bell\ufffd ff cr esc\ufffd del\ufffd nel tab"
    page = document.pages[0].model_copy(update={"results": (text, table)})
    document = document.model_copy(update={"pages": (page,)})

    alto = validate(document.to_alto()[1], "alto-4-4.xsd")
    assert [s.get("CONTENT") for s in alto.iter(f"{{{ALTO}}}String")][:2] == [expected, "head"]
    found = validate(document.to_page_xml()[1], "pagecontent-2019-07-15.xsd")
    unicode = [u.text for u in found.iter(f"{{{PAGE}}}Unicode")]
    assert unicode.count(expected) == 2 and unicode.count(cell) == 2  # line, its region
    hocr = etree.fromstring(document.to_hocr()[1].encode())
    words = [w.text for w in hocr.iter(f"{{{XHTML}}}span") if w.get("class") == "ocrx_word"]
    assert words[0] == expected and cell in words
    assert document.to_text() == f"{expected}\n\nhead\tcell\n{cell}\tx\n"
    markdown = document.to_markdown()
    assert (
        expected in markdown
        and f"| {cell} | x |" in markdown
        and not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", markdown)
    )
    if importlib.util.find_spec("docling_core") is not None:
        docling = document.to_docling()
        assert docling.texts[0].text == expected
        (item,) = docling.tables
        cells = [c.text for c in item.data.table_cells if c.start_row_offset_idx == 1]
        assert cells == [cell, "x"]
    sink = FolderSink(tmp_path, formats=["txt"])
    sink.write(document)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    with (folder / "table-p1-1.csv").open(encoding="utf-8", newline="") as handle:
        assert list(csv.reader(handle))[1] == [cell, "x"]
    table_html = html.fromstring((folder / "table-p1-1.html").read_text(encoding="utf-8"))
    # the HTML keeps the cell's whitespace as read
    assert [td.text for td in table_html.iter("td")] == ["head", "cell", expected, "x"]
    written = (folder / "document.txt").read_text(encoding="utf-8")
    assert written.count("\f") == 0 and expected in written  # one page: no page break


def test_a_document_that_was_not_read_gets_no_page_formats_and_says_so(tmp_path: Path) -> None:
    failed = Document(source="gone.pdf", status="failure", error="InputError: not a PDF")
    sink = FolderSink(tmp_path, formats=list(FORMATS))
    sink.write(failed)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert sorted(p.name for p in folder.iterdir()) == [
        "document.json",
        "document.md",
        "document.txt",
        "formats-errors.txt",
    ]
    errors = (folder / "formats-errors.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split(":")[0] for line in errors] == ["hocr", "alto", "page", "docling", "pdf"]
    assert all("no pages" in line and "not a PDF" in line for line in errors)
    assert "not read: InputError: not a PDF" in (folder / "document.txt").read_text()
    assert write_formats(failed, tmp_path, ["md"]) == {}
