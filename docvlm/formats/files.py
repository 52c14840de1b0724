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

import errno
import importlib.util
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from docvlm.errors import MissingDependencyError
from docvlm.formats.common import Converted
from docvlm.reading.sources import read_member
from docvlm.results import Page
from docvlm.settings import Limits, Settings

__all__ = ["FORMATS", "FormatSpec", "archive_member", "parse_formats", "write_formats"]


@dataclass(frozen=True)
class FormatSpec:
    """One output format: its name, the writer of its files into a folder, and the modules
    it needs with the extra that installs them (the module docstring says what each is)."""

    name: str
    write: Callable[[Converted, Path, bytes | None, str | None], None]
    needs: tuple[str, ...] = ()
    extra: str = ""


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
    FormatSpec("md", _text("document.md", _markdown)),
    FormatSpec("txt", _text("document.txt", _plain)),
    FormatSpec("hocr", _per_page("hocr", "html", _hocr)),
    FormatSpec("alto", _per_page("alto", "xml", _alto)),
    FormatSpec("page", _per_page("page", "xml", _page_xml)),
    FormatSpec("docling", _docling, ("docling_core",), "docling"),
    FormatSpec("pdf", _pdf, ("pikepdf", "fpdf"), "pdf"),
)
FORMATS: Mapping[str, FormatSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})


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
    """Write ``formats`` of ``document`` into ``folder``; returns, per format that could not
    be written (its original gone or changed), why, and leaves none of its files. The
    others are written: one failing format never costs the document its record. A full
    disk is raised (the run stops, and resumes once there is space). ``original``: the
    source's bytes when ``document.source`` does not lead to them."""
    failed: dict[str, str] = {}
    for name in formats:
        before = set(folder.rglob("*"))
        try:
            if name == "pdf" and original is None:
                original = archive_member(document.source, limits or Settings().limits())
            FORMATS[name].write(document, folder, original, password)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            _remove_new(folder, before)
            failed[name] = f"{type(error).__name__}: {error}"
        except Exception as error:  # a format is extra: its failure is reported, not fatal
            _remove_new(folder, before)
            failed[name] = f"{type(error).__name__}: {error}"
    return failed
