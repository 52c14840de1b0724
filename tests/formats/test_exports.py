"""Every format writes the shared reading order, escapes what the model wrote, and stays
valid for pages that failed or hold text XML cannot carry."""

from __future__ import annotations

from format_pages import TWO_COLUMNS, two_column_document
from lxml import etree
from schemas import validate

from docvlm import Document, MoleculeResult, Page, TextResult
from docvlm.formats.alto import ALTO
from docvlm.formats.hocr import XHTML
from docvlm.formats.markdown import escape
from docvlm.formats.page_xml import PAGE
from parsers import Box, Molecule, TextLine

ORDER = [text for _, text in TWO_COLUMNS]


def test_each_format_reads_the_two_columns_in_order() -> None:
    document = two_column_document()
    (alto,) = document.to_alto().values()
    strings = validate(alto, "alto-4-4.xsd").findall(f".//{{{ALTO}}}String")
    assert [s.get("CONTENT") for s in strings] == ORDER
    (page,) = document.to_page_xml().values()
    unicode = validate(page, "pagecontent-2019-07-15.xsd").findall(
        f".//{{{PAGE}}}TextLine/{{{PAGE}}}TextEquiv/{{{PAGE}}}Unicode"
    )
    assert [u.text for u in unicode] == ORDER
    (hocr,) = document.to_hocr().values()
    words = etree.fromstring(hocr.encode()).findall(f".//{{{XHTML}}}span[@class='ocrx_word']")
    assert [w.text for w in words] == ORDER  # "&" and "<note>" come back as written
    assert document.to_text().split() == " ".join(ORDER).split()
    blocks = document.to_markdown().split("\n\n")[1:]
    assert blocks[1] == "\n".join(ORDER[1:9]) and blocks[2] == "\n".join(ORDER[9:17])
    assert blocks[3] == "A full-width footnote & \\<note\\>\n"


def _page(results: tuple[TextResult | MoleculeResult, ...], **fields: object) -> Page:
    return Page.model_validate(
        {"number": 2, "width": 300, "height": 200, "status": "ok", "results": results, **fields}
    )


def _text(*lines: TextLine) -> TextResult:
    return TextResult(
        source="x.pdf",
        page=2,
        box=Box(x0=0, y0=0, x1=300, y1=200),
        checkpoint="c",
        prompt="ocr",
        raw="",
        lines=lines,
        confidence=0.9,
    )


def test_text_xml_cannot_hold_is_replaced_and_markdown_markup_is_escaped() -> None:
    line = TextLine(text="# 1 \x01 *bold* [x](y)", box=Box(x0=10, y0=10, x1=200, y1=30))
    document = Document(source="x.pdf", status="success", pages=(_page((_text(line),)),))
    (alto,) = document.to_alto().values()
    (string,) = validate(alto, "alto-4-4.xsd").findall(f".//{{{ALTO}}}String")
    assert string.get("CONTENT") == "# 1 \ufffd *bold* [x](y)"
    assert string.get("WC") == "0.900"
    (page,) = document.to_page_xml().values()
    validate(page, "pagecontent-2019-07-15.xsd")
    assert "\\# 1 \ufffd \\*bold\\* \\[x\\](y)" in document.to_markdown()
    assert escape("1. item\n- dash\n> quote") == "1\\. item\n\\- dash\n\\> quote"


def test_lines_without_boxes_get_strips_of_their_region_and_stay_valid() -> None:
    result = _text(TextLine(text="first"), TextLine(text="second"))
    document = Document(source="x.pdf", status="success", pages=(_page((result,)),))
    (page,) = document.to_page_xml().values()
    tree = validate(page, "pagecontent-2019-07-15.xsd")
    coords = [c.get("points") for c in tree.findall(f".//{{{PAGE}}}TextLine/{{{PAGE}}}Coords")]
    # PAGE points are pixels: the strips end at the last pixel, 299 and 199
    assert coords == ["0,0 299,0 299,99 0,99", "0,100 299,100 299,199 0,199"]


def test_a_failed_page_gives_valid_empty_files_and_says_why_in_text() -> None:
    failed = Page(number=1, status="error", error="the engine failed (OOM)")
    document = Document(source="x.pdf", status="failure", pages=(failed,))
    validate(document.to_alto()[1], "alto-4-4.xsd")
    validate(document.to_page_xml()[1], "pagecontent-2019-07-15.xsd")
    assert document.to_text() == "[page 1 not read: the engine failed (OOM)]\n"
    assert "page 1 not read: the engine failed (OOM)" in document.to_markdown()
    etree.fromstring(document.to_hocr()[1].encode())


def test_a_molecule_is_its_smiles_and_a_region_in_each_format() -> None:
    molecule = MoleculeResult(
        source="x.pdf",
        page=2,
        box=Box(x0=20, y0=40, x1=120, y1=140),
        checkpoint="c",
        prompt="smiles",
        raw="c1ccccc1O",
        molecule=Molecule(raw="c1ccccc1O", valid=True, smiles="Oc1ccccc1"),
    )
    document = Document(source="x.pdf", status="success", pages=(_page((molecule,)),))
    assert "```smiles\nOc1ccccc1\n```" in document.to_markdown()
    assert document.to_text() == "Oc1ccccc1\n"
    tree = validate(document.to_alto()[2], "alto-4-4.xsd")
    (figure,) = tree.findall(f".//{{{ALTO}}}Illustration")
    assert figure.get("TYPE") == "molecule" and figure.get("HPOS") == "20"
    tree = validate(document.to_page_xml()[2], "pagecontent-2019-07-15.xsd")
    (chem,) = tree.findall(f".//{{{PAGE}}}ChemRegion")
    points = chem.find(f"{{{PAGE}}}Coords")
    assert points is not None and points.get("points") == "20,40 119,40 119,139 20,139"
    hocr = etree.fromstring(document.to_hocr()[2].encode())
    (div,) = hocr.findall(f".//{{{XHTML}}}div[@class='ocr_chem']")
    assert div.text == "Oc1ccccc1" and div.get("title") == "bbox 20 40 120 140"
