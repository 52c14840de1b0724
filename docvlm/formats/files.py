"""The formats an output folder can hold, one row per format (``--formats``).

Each writer puts one document's files into its folder, named as in the table below, so a
folder sink (``docvlm.archive.sinks``) writes them into its staging folder and moves the
whole folder into place: resume and the manifest cover them like ``document.json``.

    md       document.md              Markdown in reading order
    txt      document.txt             plain text, pages apart by a form feed
    hocr     hocr/page-0001.html      hOCR per page
    alto     alto/page-0001.xml       ALTO 4.4 per page
    page     page/page-0001.xml       PAGE XML 2019-07-15 per page
    docling  document.docling.json    DoclingDocument (docling-core)
    pdf      document.pdf             searchable PDF: the original pages, text layer on top
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from docvlm.errors import InputError
from docvlm.formats.common import Converted
from docvlm.reading.sources import expand_sources
from docvlm.results import Page
from docvlm.settings import Settings

__all__ = ["FORMATS", "FormatSpec", "archive_member", "parse_formats", "write_formats"]


@dataclass(frozen=True)
class FormatSpec:
    """One output format: what it is, and the writer of its files into a folder."""

    name: str
    summary: str
    write: Callable[[Converted, Path, bytes | None, str | None], None]


def _text(name: str, render: Callable[[Converted], str]) -> Callable[..., None]:
    def write(document: Converted, folder: Path, _original: object, _password: object) -> None:
        (folder / name).write_text(render(document), encoding="utf-8")

    return write


def _per_page(kind: str, suffix: str, render: Callable[..., str]) -> Callable[..., None]:
    def write(document: Converted, folder: Path, _original: object, _password: object) -> None:
        target = folder / kind
        target.mkdir(exist_ok=True)
        for page in document.pages:
            text = render(page, document.source)
            (target / f"page-{page.number:04d}.{suffix}").write_text(text, encoding="utf-8")

    return write


def _markdown(document: Converted) -> str:
    from docvlm.formats.markdown import document_markdown

    return document_markdown(document.source, document.pages, document.error)


def _plain(document: Converted) -> str:
    from docvlm.formats.markdown import document_text

    return document_text(document.source, document.pages, document.error)


def _hocr(page: Page, source: str) -> str:
    from docvlm.formats.hocr import page_hocr

    return page_hocr(page, source)


def _alto(page: Page, source: str) -> str:
    from docvlm.formats.alto import page_alto

    return page_alto(page, source)


def _page_xml(page: Page, source: str) -> str:
    from docvlm.formats.page_xml import page_xml

    return page_xml(page, source, None)


def _docling(document: Converted, folder: Path, _original: object, _password: object) -> None:
    from docvlm.formats.docling import to_docling

    text = to_docling(document).model_dump_json(indent=2)
    (folder / "document.docling.json").write_text(text, encoding="utf-8")


def _pdf(document: Converted, folder: Path, original: bytes | None, password: str | None) -> None:
    from docvlm.formats.pdf import write_searchable_pdf

    if document.pages:
        write_searchable_pdf(document, folder / "document.pdf", source=original, password=password)


_SPECS = (
    FormatSpec("md", "Markdown in reading order", _text("document.md", _markdown)),
    FormatSpec("txt", "plain text", _text("document.txt", _plain)),
    FormatSpec("hocr", "hOCR per page", _per_page("hocr", "html", _hocr)),
    FormatSpec("alto", "ALTO 4.4 per page", _per_page("alto", "xml", _alto)),
    FormatSpec("page", "PAGE XML 2019 per page", _per_page("page", "xml", _page_xml)),
    FormatSpec("docling", "DoclingDocument JSON", _docling),
    FormatSpec("pdf", "searchable PDF", _pdf),
)
FORMATS: Mapping[str, FormatSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})


def parse_formats(names: Sequence[str] | str) -> tuple[str, ...]:
    """``"pdf,alto"`` or ``["pdf", "alto"]`` as known format names in table order;
    ValueError naming an unknown one and listing the known."""
    items = [names] if isinstance(names, str) else list(names)
    given = [name for item in items for name in item.split(",")]
    wanted = {n.strip().lower() for n in given if n.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown format {unknown[0]!r}; use {', '.join(FORMATS)}")
    return tuple(name for name in FORMATS if name in wanted)


def archive_member(name: str, settings: Settings) -> bytes | None:
    """The bytes of ``archive.zip!member.pdf`` (a document read from inside an archive),
    or None when ``name`` is a plain file."""
    outer, bang, _ = name.partition("!")
    if not bang or not Path(outer).is_file():
        return None
    for item in expand_sources([Path(outer)], settings.limits()):
        if item.name == name and isinstance(item.source, bytes):
            return item.source
    raise InputError("the member is no longer in its archive", source=name)


def write_formats(
    document: Converted,
    folder: Path,
    formats: Sequence[str],
    *,
    password: str | None = None,
    settings: Settings | None = None,
) -> dict[str, str]:
    """Write ``formats`` of ``document`` into ``folder``; returns, per format that could not
    be written (its original gone or changed, an extra not installed), why. The others are
    written: one failing format never costs the document its record."""
    failed: dict[str, str] = {}
    original: bytes | None = None
    for name in formats:
        try:
            if name == "pdf" and original is None:
                original = archive_member(document.source, settings or Settings())
            FORMATS[name].write(document, folder, original, password)
        except Exception as error:  # a format is extra: its failure is reported, not fatal
            failed[name] = f"{type(error).__name__}: {error}"
    return failed
