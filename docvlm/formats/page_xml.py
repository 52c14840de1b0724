"""PAGE XML (2019-07-15) per page: regions, lines, their text and the reading order.

PAGE describes one page image per file, so each page is one ``PcGts`` document. Regions
follow the shared reading order (listed in ``ReadingOrder``): one ``TextRegion`` per text
block (per layout region when layout ran, else per column run), each line a ``TextLine``
with its rectangle as ``Coords`` and its text as ``TextEquiv``. A table is a
``TableRegion`` with ``rows`` and ``columns`` whose cells are nested ``TextRegion``s with a
``TableCellRole`` (row, column, spans, header): PAGE 2019 has no cell element of its own,
this is how its schema nests cells. Empty cells are written too, so the grid is whole.
Molecules are ``ChemRegion``, music ``MusicRegion``, figures ``ImageRegion``; answers to
questions are not on the page and are left out. ``TextEquiv/@conf`` is the confidence of
the model output the text came from.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from docvlm.formats.common import SOFTWARE, Ids, clean_text, pixels, software_version
from docvlm.formats.order import Block, cell_box, reading_order
from docvlm.results import Page, TableResult
from parsers import Box, Table

__all__ = ["PAGE", "PAGE_SCHEMA", "page_xml"]

PAGE = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
PAGE_SCHEMA = f"{PAGE}/pagecontent.xsd"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_REGIONS = {"molecule": "ChemRegion", "music": "MusicRegion", "caption": "ImageRegion"}


def _element(parent: etree._Element, tag: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{PAGE}}}{tag}", attributes)


def _coords(parent: etree._Element, box: Box, size: tuple[int, int]) -> None:
    """The box's corner pixels: PAGE points are pixels (0..width-1), so the last pixel
    is one before the box's right and bottom edges."""
    x0, y0, x1, y1 = pixels(box, size)
    x1, y1 = x1 - 1, y1 - 1
    _element(parent, "Coords", points=f"{x0},{y0} {x1},{y0} {x1},{y1} {x0},{y1}")


def _outline(parent: etree._Element, box: Box, page: Page) -> None:
    """A line's Coords: on a page read turned or straightened, its turned rectangle on the
    scan (``Page.outline``), else its box."""
    if not (page.rotation or page.skew):
        _coords(parent, box, (page.width, page.height))
        return
    corners = page.outline(box)
    points = " ".join(
        f"{min(max(0, round(x)), page.width - 1)},{min(max(0, round(y)), page.height - 1)}"
        for x, y in corners
    )
    _element(parent, "Coords", points=points)


def _text(parent: etree._Element, text: str, conf: str | None) -> None:
    equiv = _element(parent, "TextEquiv")
    if conf is not None:
        equiv.set("conf", conf)
    _element(equiv, "Unicode").text = clean_text(text)


def _text_region(
    parent: etree._Element, block: Block, ids: Ids, conf: str | None, page: Page
) -> etree._Element:
    size = (page.width, page.height)
    region = _element(parent, "TextRegion", id=ids("region"), type="paragraph")
    if page.rotation or page.skew:
        region.set("orientation", _orientation(page))
    _coords(region, block.box, size)
    for line in block.lines:
        text_line = _element(region, "TextLine", id=ids("line"))
        _outline(text_line, line.box, page)
        _text(text_line, line.text, conf)
    _text(region, block.text, conf)
    return region


def _table_region(
    parent: etree._Element,
    block: Block,
    result: TableResult,
    table: Table,
    ids: Ids,
    conf: str | None,
    size: tuple[int, int],
) -> etree._Element:
    rows, columns = table.shape
    region = _element(parent, "TableRegion", id=ids("table"), rows=str(rows), columns=str(columns))
    _coords(region, block.box, size)
    for cell in table.cells:
        area, _ = cell_box(result, cell)
        cell_region = _element(region, "TextRegion", id=ids("cell"))
        _coords(cell_region, area, size)
        role = _element(_element(cell_region, "Roles"), "TableCellRole")
        role.set("rowIndex", str(cell.row))
        role.set("columnIndex", str(cell.col))
        role.set("rowSpan", str(cell.rowspan))
        role.set("colSpan", str(cell.colspan))
        role.set("header", "true" if cell.is_header else "false")
        if cell.text:
            text_line = _element(cell_region, "TextLine", id=ids("line"))
            _coords(text_line, area, size)
            _text(text_line, cell.text, conf)
            _text(cell_region, cell.text, conf)
    return region


def _orientation(page: Page) -> str:
    """PAGE's ``orientation``: the clockwise turn (-180 to 180] that corrects the text."""
    turn = (page.rotation + page.skew + 180) % 360 - 180
    return f"{180.0 if turn == -180 else turn:g}"


def _region(parent: etree._Element, block: Block, ids: Ids, page: Page) -> etree._Element | None:
    size = (page.width, page.height)
    confidence = block.result.confidence
    conf = None if confidence is None else f"{min(1.0, max(0.0, confidence)):.3f}"
    result = block.result
    if block.kind == "text" and block.lines:
        return _text_region(parent, block, ids, conf, page)
    if isinstance(result, TableResult) and result.table is not None:
        return _table_region(parent, block, result, result.table, ids, conf, size)
    if block.kind in _REGIONS:
        region = _element(parent, _REGIONS[block.kind], id=ids("region"))
        _coords(region, block.box, size)
        return region
    return None  # a failed read, or an answer (not on the page)


def page_xml(page: Page, source: str, created: datetime | None = None) -> str:
    """The PAGE document of one page of ``source`` (UTF-8, with its declaration).

    ``created`` (the ``Metadata`` time, required by PAGE) defaults to now, in UTC; pass
    a fixed time for byte-identical files across runs.
    """
    when = (created or datetime.now(UTC)).replace(microsecond=0).isoformat()
    root = etree.Element(f"{{{PAGE}}}PcGts", nsmap={None: PAGE, "xsi": _XSI})
    root.set(f"{{{_XSI}}}schemaLocation", f"{PAGE} {PAGE_SCHEMA}")
    metadata = _element(root, "Metadata")
    _element(metadata, "Creator").text = f"{SOFTWARE} {software_version()}"
    _element(metadata, "Created").text = when
    _element(metadata, "LastChange").text = when
    page_element = _element(
        root,
        "Page",
        imageFilename=clean_text(source),
        imageWidth=str(page.width),
        imageHeight=str(page.height),
    )
    if page.rotation or page.skew:  # the clockwise turn that corrects the page
        page_element.set("orientation", _orientation(page))
    order = _element(_element(page_element, "ReadingOrder"), "OrderedGroup", id="reading_order")
    ids = Ids(page.number)
    for block in reading_order(page):
        region = _region(page_element, block, ids, page)
        if region is not None:
            index = str(len(order))
            _element(order, "RegionRefIndexed", index=index, regionRef=region.get("id", ""))
    if not len(order):  # an OrderedGroup needs a member: a page without regions has none
        page_element.remove(order.getparent())
    text: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return text.decode("utf-8")
