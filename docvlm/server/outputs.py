"""A conversion output on disk as an archive for the viewer (``docvlm view OUT``).

It reads each form ``docvlm convert --out`` writes, told apart by ``Output.existing``
(``docvlm.archive.output``):

- a JSONL of Documents: indexed once (each line's byte offset and what the list and the
  suspect filter need); a document is read again from its line when it is opened, so
  memory stays small for a large archive;
- an output folder: one ``NAME/document.json`` per document, read when opened;
- Parquet (a file, or a folder of parts) and the Ray runner's folder of JSON Lines
  parts: read whole into memory (``Output.records``; Parquet rows grouped back into
  Documents from their ``result_json``). Parquet keeps no render DPI, so pages are
  redrawn at the configured DPI; boxes are drawn relative to the page size, so they
  still line up.

Pages are re-rendered on demand from each Document's source: its path as written
(absolute, or relative to ``root`` or the output's folder), or a member of a zip/tar
archive (``archive.zip!member.pdf``). A record is data, not an instruction: only files
under ``root`` or the output's folder (after resolving ``..`` and links) are opened, and
every page that cannot be drawn, whatever the reason, is the same ``PageImageError`` (the
cause is logged, not answered), so the viewer cannot be used to probe which paths exist.
"""

from __future__ import annotations

import logging
from pathlib import Path

from docvlm.archive.output import Output
from docvlm.archive.readback import OutputError, document_files, load_document, read_parquet
from docvlm.document import Document
from docvlm.errors import InputError
from docvlm.reading.render import Source
from docvlm.reading.sources import read_member
from docvlm.server.archive import (
    DocumentSummary,
    Entry,
    PageImageError,
    PngCache,
    Suspect,
    filter_suspects,
    find_page,
    index_entry,
    render_page,
)
from docvlm.settings import Settings

__all__ = ["FileArchive", "OutputError", "read_parquet"]

_log = logging.getLogger("docvlm.server")


class FileArchive:
    """Documents read from a conversion output (see the module docstring)."""

    def __init__(self, output: Output, settings: Settings, *, root: Path | None = None) -> None:
        path = self.path = output.path
        self._settings = settings
        self._roots = [r.resolve() for r in (root, path.parent) if r is not None]
        self._places: list[tuple[Path, int]] = []  # (file, byte offset of its line or -1)
        self._loaded: list[Document] = []
        self._entries: list[Entry] = []
        self._pngs = PngCache()
        if output.kind == "jsonl":
            self._index_jsonl()
        elif output.kind == "folder":
            self._index_folder()
        else:
            for document in output.records():
                self._entries.append(index_entry(len(self._loaded), document))
                self._loaded.append(document)

    def _index_jsonl(self) -> None:
        with self.path.open("rb") as handle:
            offset = 0
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    document = load_document(line, f"{self.path}, line {number}")
                    self._entries.append(index_entry(len(self._places), document))
                    self._places.append((self.path, offset))
                offset += len(line)

    def _index_folder(self) -> None:
        for file in document_files(self.path):
            document = load_document(file.read_bytes(), str(file))
            self._entries.append(index_entry(len(self._places), document))
            self._places.append((file, -1))

    def summaries(self, offset: int, limit: int) -> tuple[int, list[DocumentSummary]]:
        return len(self._entries), [e.summary for e in self._entries[offset : offset + limit]]

    def document(self, number: int) -> Document:
        if number < 0 or number >= len(self._entries):
            raise KeyError(number)
        if self._loaded:
            return self._loaded[number]
        file, offset = self._places[number]
        if offset < 0:
            return Document.model_validate_json(file.read_bytes())
        with file.open("rb") as handle:
            handle.seek(offset)
            return Document.model_validate_json(handle.readline())

    def suspects(self, min_confidence: float | None, limit: int) -> list[Suspect]:
        return filter_suspects(self._entries, min_confidence, limit)

    def entries(self) -> list[Entry]:
        return list(self._entries)

    def reviewed(self) -> set[tuple[str, int]]:
        return set()  # the review marks are in the corrections log (EditedArchive)

    def page_png(self, number: int, page: int) -> bytes:
        cached = self._pngs.get((number, page))
        if cached is not None:
            return cached
        document = self.document(number)
        found = find_page(document, page)
        try:
            source = self._locate(document.source)
            png = render_page(source, found, password=None, settings=self._settings)
        except PageImageError as error:
            _log.info("page %d of document %d not drawn: %s", page, number, error)
            raise PageImageError(f"document {number} has no page image {page}") from None
        return self._pngs.put((number, page), png)

    def original(self, number: int) -> bytes:
        """The bytes of document ``number``'s source, found as the viewer finds it (under
        the roots only); ``PageImageError`` when it cannot be."""
        source = self._locate(self.document(number).source)
        return source if isinstance(source, bytes) else Path(source).read_bytes()  # type: ignore[arg-type]

    def _locate(self, name: str) -> Source:
        """The file (or archive member's bytes) a Document's ``source`` names."""
        if name.startswith("<"):
            raise PageImageError(f"{name}: the source was not a file, so it cannot be redrawn")
        outer, bang, member = name.partition("!")
        path = self._find(outer)
        if path is None:
            places = ", ".join(str(r) for r in self._roots)
            raise PageImageError(f"{outer}: no such source file under {places}")
        if not bang:
            return path
        try:
            return read_member(path, member, self._settings.limits())
        except InputError as error:
            raise PageImageError(f"{name}: no such member in the archive") from error

    def _find(self, name: str) -> Path | None:
        """The file ``name`` names, when it lies under one of the roots."""
        given = Path(name)
        candidates = [given] if given.is_absolute() else [r / given for r in self._roots]
        for candidate in candidates:
            try:
                real = candidate.resolve()
                if any(real.is_relative_to(r) for r in self._roots) and real.is_file():
                    return real
            except (OSError, RuntimeError, ValueError):  # a link loop, a name too long, a NUL
                continue
        return None
