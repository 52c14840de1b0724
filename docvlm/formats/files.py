"""The formats an output folder can hold: ``FORMATS``, one row per format (``--formats``).

A row names the format, its files in a document's folder, the writer that puts them
there, what it needs installed and its one-line help. Everything else that lists the
formats is derived from the rows: ``--formats`` and its help, the sinks' advice for an
``--out x.md``, ``write_formats`` and the ``Document.to_*`` conveniences (``render``). A
new format is one module and one row.

Each writer puts one document's files into its folder, so a folder sink
(``docvlm.archive.sinks``) writes them into its staging folder and moves the whole folder
into place: resume and the manifest cover them like ``document.json``. A document that
was not read (no pages) gets no file of a format made of pages; ``write_formats`` says so.
"""

from __future__ import annotations

import errno
import importlib.util
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import TYPE_CHECKING

from docvlm.errors import MissingDependencyError
from docvlm.formats.common import Converted
from docvlm.reading.sources import read_member
from docvlm.results import Page
from docvlm.settings import Limits, Settings

if TYPE_CHECKING:
    from docling_core.types.doc import DoclingDocument

__all__ = [
    "FORMATS",
    "FormatSpec",
    "Inputs",
    "archive_member",
    "formats_by_suffix",
    "formats_help",
    "parse_formats",
    "render",
    "write_formats",
]


@dataclass
class Inputs:
    """What a writer may use besides the records: the original's bytes (``original()``:
    as given, else read from inside an archive when a writer first asks), its password,
    and the time PAGE records as its creation (None: now)."""

    source: str
    password: str | None = None
    given: bytes | None = None
    limits: Limits | None = None
    created: datetime | None = None

    def original(self) -> bytes | None:
        """The source's bytes when ``source`` does not lead to them (``a.zip!b.pdf``)."""
        if self.given is None:
            self.given = archive_member(self.source, self.limits or Settings().limits())
        return self.given


@dataclass(frozen=True)
class FormatSpec:
    """One output format, a row of ``FORMATS``.

    ``files``: where it writes in a document's folder (``alto/page-0001.xml``: a file per
    page); ``write`` puts them there; ``render`` gives the same content in memory (what
    ``Document.to_*`` return; None when the format is only a file); ``needs``: modules it
    imports, installed by ``pip install 'docvlm[extra]'``; ``of_pages``: made of the
    pages, so a document without pages gets none of its files; ``reads_original``: made
    from the source's bytes too (``Inputs.original()``), which a caller that keeps them
    elsewhere (the viewer's export) hands to ``write_formats``."""

    name: str
    help: str
    files: str
    write: Callable[[Converted, Path, Inputs], None]
    render: Callable[[Converted, Inputs], object] | None = None
    needs: tuple[str, ...] = ()
    extra: str = ""
    of_pages: bool = True
    reads_original: bool = False


def _document_file(name: str, help: str, file: str, text: Callable[[Converted], str]) -> FormatSpec:
    """A format written as one text file per document, which says why when the document
    was not read."""

    def write(document: Converted, folder: Path, _inputs: Inputs) -> None:
        (folder / file).write_text(text(document), encoding="utf-8")

    return FormatSpec(name, help, file, write, lambda d, _: text(d), of_pages=False)


def _page_files(
    name: str, help: str, suffix: str, page_text: Callable[[Page, str, Inputs], str]
) -> FormatSpec:
    """A format written as one file per page, in a folder named as the format."""

    def render(document: Converted, inputs: Inputs) -> dict[int, str]:
        return {page.number: page_text(page, document.source, inputs) for page in document.pages}

    def write(document: Converted, folder: Path, inputs: Inputs) -> None:
        target = folder / name
        target.mkdir(exist_ok=True)
        for number, text in render(document, inputs).items():
            (target / f"page-{number:04d}.{suffix}").write_text(text, encoding="utf-8")

    return FormatSpec(name, help, f"{name}/page-0001.{suffix}", write, render)


def _markdown(document: Converted) -> str:
    from docvlm.formats.markdown import document_markdown

    return document_markdown(document.source, document.pages, document.error)


def _plain(document: Converted) -> str:
    from docvlm.formats.markdown import document_text

    return document_text(document.source, document.pages, document.error)


def _hocr(page: Page, source: str, _inputs: Inputs) -> str:
    from docvlm.formats import hocr

    return hocr.page_hocr(page, source)


def _alto(page: Page, source: str, _inputs: Inputs) -> str:
    from docvlm.formats import alto

    return alto.page_alto(page, source)


def _page_xml(page: Page, source: str, inputs: Inputs) -> str:
    from docvlm.formats import page_xml

    return page_xml.page_xml(page, source, inputs.created)


def _docling(document: Converted, _inputs: Inputs) -> DoclingDocument:
    from docvlm.formats.docling import to_docling

    return to_docling(document)


def _docling_file(document: Converted, folder: Path, inputs: Inputs) -> None:
    text = _docling(document, inputs).model_dump_json(indent=2)
    (folder / "document.docling.json").write_text(text, encoding="utf-8")


def _pdf(document: Converted, folder: Path, inputs: Inputs) -> None:
    from docvlm.formats.pdf import write_searchable_pdf

    original = inputs.original()
    write_searchable_pdf(
        document, folder / "document.pdf", source=original, password=inputs.password
    )


_SPECS = (
    _document_file("md", "Markdown in reading order", "document.md", _markdown),
    _document_file("txt", "plain text, pages apart by a form feed", "document.txt", _plain),
    _page_files("hocr", "hOCR per page", "html", _hocr),
    _page_files("alto", "ALTO 4.4 per page", "xml", _alto),
    _page_files("page", "PAGE XML 2019 per page", "xml", _page_xml),
    FormatSpec(
        name="docling",
        help="DoclingDocument JSON, for docling-core",
        files="document.docling.json",
        write=_docling_file,
        render=_docling,
        needs=("docling_core",),
        extra="docling",
    ),
    FormatSpec(
        name="pdf",
        help="searchable PDF: the original with a text layer",
        files="document.pdf",
        write=_pdf,
        needs=("pikepdf", "fpdf"),
        extra="pdf",
        reads_original=True,
    ),
)
FORMATS: Mapping[str, FormatSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})


def formats_help() -> str:
    """The formats for a help text: ``md (Markdown in reading order), txt (...), ...``."""
    return ", ".join(f"{spec.name} ({spec.help})" for spec in FORMATS.values())


def formats_by_suffix() -> dict[str, str]:
    """File suffix -> the formats that write it, comma-separated (``.xml``: ``alto,page``)."""
    out: dict[str, list[str]] = {}
    for spec in FORMATS.values():
        out.setdefault(PurePath(spec.files).suffix, []).append(spec.name)
    return {suffix: ",".join(names) for suffix, names in out.items()}


def render(name: str, document: Converted, inputs: Inputs | None = None) -> object:
    """Format ``name`` of ``document`` in memory (what its row's ``render`` gives: text, a
    page number -> text mapping, a DoclingDocument). ValueError for a format that is only
    written as a file (the searchable PDF)."""
    spec = FORMATS[name]
    if spec.render is None:
        raise ValueError(f"the {name} format is written as a file only: use write_formats")
    return spec.render(document, inputs or Inputs(document.source))


def parse_formats(names: Sequence[str] | str) -> tuple[str, ...]:
    """``"pdf,alto"`` or ``["pdf", "alto"]`` as known format names in table order.

    ValueError names an unknown one and lists the known; ``MissingDependencyError`` says
    which extra a chosen format needs, before any page is read."""
    items = [names] if isinstance(names, str) else list(names)
    given = [name for item in items for name in item.split(",")]
    wanted = {n.strip().lower() for n in given if n.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown format {unknown[0]!r}; use {', '.join(FORMATS)}")
    for name in wanted:
        spec = FORMATS[name]
        missing = [m for m in spec.needs if importlib.util.find_spec(m) is None]
        if missing:
            raise MissingDependencyError(
                f"the {name} format needs {', '.join(missing)}: pip install 'docvlm[{spec.extra}]'"
            )
    return tuple(name for name in FORMATS if name in wanted)


def archive_member(name: str, limits: Limits) -> bytes | None:
    """The bytes of ``archive.zip!member.pdf`` (a document read from inside an archive),
    or None when ``name`` is a plain file."""
    outer, bang, member = name.partition("!")
    if not bang or not Path(outer).is_file():
        return None
    return read_member(Path(outer), member, limits)


def _remove_new(folder: Path, before: set[Path]) -> None:
    """What a failed format left in ``folder`` (half a PDF, some pages' XML) goes."""
    for path in sorted(set(folder.rglob("*")) - before, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def write_formats(
    document: Converted,
    folder: Path,
    formats: Sequence[str],
    *,
    password: str | None = None,
    limits: Limits | None = None,
    original: bytes | None = None,
) -> dict[str, str]:
    """Write ``formats`` of ``document`` into ``folder``; returns, per format not written,
    why (its original gone or changed, or a document without pages for a format made of
    pages), and leaves none of its files. The others are written: one failing format
    never costs the document its record. A full disk is raised (the run stops, and resumes
    once there is space). ``original``: the source's bytes when ``document.source`` does
    not lead to them."""
    inputs = Inputs(document.source, password, original, limits)
    failed: dict[str, str] = {}
    for name in formats:
        spec = FORMATS[name]
        if spec.of_pages and not document.pages:
            why = f": {document.error}" if document.error else ""
            failed[name] = f"not written: the document has no pages (it was not read{why})"
            continue
        before = set(folder.rglob("*"))
        try:
            spec.write(document, folder, inputs)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            _remove_new(folder, before)
            failed[name] = f"{type(error).__name__}: {error}"
        except Exception as error:  # a format is extra: its failure is reported, not fatal
            _remove_new(folder, before)
            failed[name] = f"{type(error).__name__}: {error}"
    return failed
