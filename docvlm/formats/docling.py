"""A converted ``Document`` as a docling-core ``DoclingDocument``.

So that Docling's chunkers, its Markdown/HTML exports and its LangChain and LlamaIndex
integrations take docvlm's output as they take Docling's own.

How docvlm's records map (pages in order, each page's blocks in the shared reading order):

- each page a ``PageItem``, sized in PDF points for PDF pages (pixels x 72 / dpi) and in
  pixels for images (Docling sizes an image page by its pixels too);
- each line of text a ``TextItem`` (label ``text``) whose provenance is the line's box;
- each table a ``TableItem`` whose ``TableData`` cells keep their grid place, row and
  column spans, header flags (``column_header`` for the header rows, ``row_header`` for
  ``<th>`` cells below them) and their own boxes when the model wrote them;
- each molecule a ``PictureItem`` at its box, its SMILES in ``meta.molecule``
  (``MoleculeMetaField``, with the read's confidence and checkpoint), which Docling's
  Markdown export prints under the picture; a score is a ``PictureItem`` without meta.
- captions and answers are not written: they describe the page, they are not on it.

Text (lines, cells, SMILES, the name) goes through ``clean_text``, the rule every format
applies to control characters. Boxes use ``CoordOrigin.BOTTOMLEFT``, as Docling's own PDF
conversion writes them; ``bbox.to_top_left_origin(page.size.height)`` gives the top-left
form back.
"""

from __future__ import annotations

import mimetypes
from pathlib import PurePath
from typing import TYPE_CHECKING

from docvlm.errors import MissingDependencyError
from docvlm.formats.common import Converted, clean_text
from docvlm.formats.order import Block, reading_order
from docvlm.results import MoleculeResult, Page, TableResult
from parsers import Box, Table

if TYPE_CHECKING:
    from docling_core.types.doc import (
        BoundingBox,
        DoclingDocument,
        DocumentOrigin,
        ProvenanceItem,
        TableData,
    )

__all__ = ["to_docling"]


def to_docling(document: Converted) -> DoclingDocument:
    """``document`` as a ``DoclingDocument`` (see the module docstring for the mapping)."""
    try:
        from docling_core.types.doc import DoclingDocument, Size
    except ImportError as error:
        raise MissingDependencyError(
            "DoclingDocument export needs docling-core: pip install 'docvlm[docling]'"
        ) from error
    name = clean_text(PurePath(document.source).stem) or "document"
    doc = DoclingDocument(name=name, origin=_origin(document))
    for page in document.pages:
        scale = 72.0 / page.dpi if page.dpi else 1.0
        height = page.height * scale
        doc.add_page(page_no=page.number, size=Size(width=page.width * scale, height=height))
        for block in reading_order(page):
            _add_block(doc, block, page, scale, height)
    return doc


def _add_block(doc: DoclingDocument, block: Block, page: Page, scale: float, height: float) -> None:
    from docling_core.types.doc import DocItemLabel, MoleculeMetaField, PictureMeta

    def prov(box: Box, text: str = "") -> ProvenanceItem:
        return _prov(page.number, _bbox(box, scale, height), len(text))

    result = block.result
    if block.kind == "text":
        for line in block.lines:
            text = clean_text(line.text)
            if text.strip():
                doc.add_text(DocItemLabel.TEXT, text, prov=prov(line.box, text))
    elif block.kind == "table" and isinstance(result, TableResult) and result.table:
        data = _table_data(result.table, scale, height)
        doc.add_table(data=data, prov=prov(block.box))
    elif block.kind == "molecule" and isinstance(result, MoleculeResult):
        picture = doc.add_picture(prov=prov(block.box))
        smiles = result.molecule.smiles if result.molecule else None
        if smiles:
            picture.meta = PictureMeta(
                molecule=MoleculeMetaField(
                    smi=clean_text(smiles),
                    confidence=result.confidence,
                    created_by=result.checkpoint,
                )
            )
    elif block.kind == "music":
        doc.add_picture(prov=prov(block.box))


def _origin(document: Converted) -> DocumentOrigin | None:
    """Docling's origin (file name, type, a 64-bit hash) when the source was hashed."""
    from docling_core.types.doc import DocumentOrigin

    if document.sha256 is None or document.source.startswith("<"):
        return None
    filename = clean_text(PurePath(document.source).name)
    mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    # Docling's binary_hash is an unsigned 64-bit integer: the SHA-256's first 8 bytes
    return DocumentOrigin(
        filename=filename, mimetype=mimetype, binary_hash=int(document.sha256[:16], 16)
    )


def _bbox(box: Box, scale: float, height: float) -> BoundingBox:
    from docling_core.types.doc import BoundingBox, CoordOrigin

    return BoundingBox(
        l=box.x0 * scale,
        t=height - box.y0 * scale,
        r=box.x1 * scale,
        b=height - box.y1 * scale,
        coord_origin=CoordOrigin.BOTTOMLEFT,
    )


def _prov(page_no: int, bbox: BoundingBox, length: int) -> ProvenanceItem:
    from docling_core.types.doc import ProvenanceItem

    return ProvenanceItem(page_no=page_no, bbox=bbox, charspan=(0, length))


def _table_data(table: Table, scale: float, height: float) -> TableData:
    from docling_core.types.doc import TableCell, TableData

    rows, cols = table.shape
    cells = [
        TableCell(
            text=clean_text(cell.text),
            bbox=_bbox(cell.box, scale, height) if cell.box else None,
            row_span=cell.rowspan,
            col_span=cell.colspan,
            start_row_offset_idx=cell.row,
            end_row_offset_idx=cell.row + cell.rowspan,
            start_col_offset_idx=cell.col,
            end_col_offset_idx=cell.col + cell.colspan,
            column_header=cell.row < table.header_rows,
            row_header=cell.is_header and cell.row >= table.header_rows,
        )
        for cell in table.cells
    ]
    return TableData(num_rows=rows, num_cols=cols, table_cells=cells)
