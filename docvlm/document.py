"""``Document``: a converted source, its pages, and the files it exports to.

The page-level models live in ``docvlm.results``; a Document adds the source, its hash,
status and the joined tables, and its ``to_*`` methods write the formats of
``docvlm.formats`` (loaded on first use). ``json_schema`` gives the JSON Schema of what
docvlm writes, for ETL users.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import Field, TypeAdapter

from docvlm.results import (
    SCHEMA_VERSION,
    DocumentStatus,
    Frozen,
    Page,
    Result,
    TableResult,
    preview,
)

if TYPE_CHECKING:
    from docling_core.types.doc import DoclingDocument

__all__ = ["Document", "json_schema"]


class Document(Frozen):
    """A converted source: pages with results, or the error that stopped it."""

    schema_version: int = Field(default=SCHEMA_VERSION, description="version of this layout")
    source: str = Field(description="file path, or <bytes>/<image>")
    sha256: str | None = Field(
        default=None, description="SHA-256 of the source's bytes (hex), when it was hashed"
    )
    status: DocumentStatus = Field(description="success, partial (some pages failed), failure")
    error: str | None = Field(default=None, description="why the whole source failed")
    pages: tuple[Page, ...] = Field(default=())
    tables: tuple[TableResult, ...] = Field(
        default=(), description="the document's tables in order, continued tables joined"
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "source", self.source
        yield "status", self.status
        if self.error:
            yield "error", preview(self.error)
        yield "pages", len(self.pages)
        yield "results", sum(len(page.results) for page in self.pages)

    # Exports (docs/formats.md): typed conveniences over the rows of
    # docvlm.formats.files.FORMATS (the writers, loaded on first use).
    def to_text(self) -> str:
        """Plain text in reading order; pages apart by a form feed."""
        return cast(str, _render("txt", self))

    def to_markdown(self) -> str:
        """Markdown in reading order: tables as tables, a molecule as its SMILES."""
        return cast(str, _render("md", self))

    def to_hocr(self) -> dict[int, str]:
        """hOCR (XHTML) per page: page number -> document."""
        return cast("dict[int, str]", _render("hocr", self))

    def to_alto(self) -> dict[int, str]:
        """ALTO 4.4 XML per page: page number -> document."""
        return cast("dict[int, str]", _render("alto", self))

    def to_page_xml(self, created: datetime | None = None) -> dict[int, str]:
        """PAGE XML (2019-07-15) per page: page number -> document (``created``: the
        Metadata time, by default now)."""
        return cast("dict[int, str]", _render("page", self, created))

    def write_searchable_pdf(
        self,
        path: str | Path,
        *,
        source: str | Path | bytes | None = None,
        password: str | None = None,
    ) -> Path:
        """The original (``source`` or ``self.source``, checked against ``self.sha256``) with
        an invisible text layer at each line's box; needs ``docvlm[pdf]`` (docs/formats.md)."""
        from docvlm.formats.pdf import write_searchable_pdf

        return write_searchable_pdf(self, path, source=source, password=password)

    def to_docling(self) -> DoclingDocument:
        """A docling-core ``DoclingDocument`` (pages, lines with boxes, tables as cells,
        molecules with their SMILES); needs ``docvlm[docling]`` (docs/formats.md)."""
        return cast("DoclingDocument", _render("docling", self))

    def _repr_html_(self) -> str:
        """Notebooks show each page's status and what was read, tables as tables."""
        parts = [f"<h4>{html.escape(self.source)}: {self.status}</h4>"]
        if self.error:
            parts.append(f"<p>{html.escape(self.error)}</p>")
        for page in self.pages:
            parts.append(f"<h5>page {page.number}: {page.status}</h5>")
            if page.error:
                parts.append(f"<p>{html.escape(page.error)}</p>")
            for result in page.results:
                if isinstance(result, TableResult) and result.table is not None:
                    parts.append(result.table.html)
                else:
                    body = result.summary() if result.status == "ok" else f"! {result.error}"
                    label = html.escape(result.task)
                    parts.append(f"<p><b>{label}</b></p><pre>{html.escape(body)}</pre>")
        return "\n".join(parts)


def _render(name: str, document: Document, created: datetime | None = None) -> object:
    """Format ``name`` of ``document`` in memory, by its row in ``FORMATS``."""
    from docvlm.formats.files import Inputs, render

    return render(name, document, Inputs(document.source, created=created))


_RESULTS = TypeAdapter(list[Result])


def json_schema(kind: Literal["results", "document"] = "results") -> dict[str, Any]:
    """JSON Schema of a list of results (what ``read-*`` commands print) or of a Document.

    It describes what docvlm writes (serialization mode): computed fields such as
    ``Table.html`` are in it, marked read-only, and are skipped when a record is loaded back.
    """
    if kind == "document":
        return Document.model_json_schema(mode="serialization")
    return _RESULTS.json_schema(mode="serialization")
