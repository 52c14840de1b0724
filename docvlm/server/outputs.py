"""A conversion output on disk as an archive for the viewer (``docvlm view OUT``).

A JSONL of Documents (what ``docvlm convert --json`` writes) is indexed once: the byte
offset of each line and what the list and the suspect filter need; a document is read
again from its line when it is opened, so memory stays small for a large archive. Pages
are re-rendered on demand from each Document's source: its path as written (absolute, or
relative to ``root``, the working directory or the output's folder), or a member of a
zip/tar archive (``archive.zip!member.pdf``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from docvlm.render import Source
from docvlm.results import Document
from docvlm.server.archive import (
    DocumentSummary,
    Entry,
    PageImageError,
    PngCache,
    Suspect,
    filter_suspects,
    index_entry,
    page_dpi,
    render_page,
)
from docvlm.settings import Settings
from docvlm.sources import expand_sources

__all__ = ["FileArchive", "OutputError"]


class OutputError(ValueError):
    """The output cannot be read as Documents; names the file and line."""


class FileArchive:
    """Documents read from a conversion output (see the module docstring)."""

    def __init__(self, path: Path, settings: Settings, *, root: Path | None = None) -> None:
        self.path = path
        self._settings = settings
        self._roots = [r for r in (root, Path.cwd(), path.parent) if r is not None]
        self._offsets: list[int] = []
        self._loaded: list[Document] = []
        self._entries: list[Entry] = []
        self._pngs = PngCache()
        if path.is_file() and _looks_like_jsonl(path):
            self._index_jsonl()
        else:
            self._load(_read_other(path))

    def _index_jsonl(self) -> None:
        with self.path.open("rb") as handle:
            offset = 0
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        document = Document.model_validate_json(line)
                    except ValueError as error:
                        raise OutputError(
                            f"{self.path}, line {number}: not a Document "
                            f"({str(error).splitlines()[0]})"
                        ) from error
                    self._entries.append(index_entry(len(self._offsets), document))
                    self._offsets.append(offset)
                offset += len(line)

    def _load(self, documents: Iterable[Document]) -> None:
        for document in documents:
            self._entries.append(index_entry(len(self._loaded), document))
            self._loaded.append(document)

    def summaries(self, offset: int, limit: int) -> tuple[int, list[DocumentSummary]]:
        return len(self._entries), [e.summary for e in self._entries[offset : offset + limit]]

    def document(self, number: int) -> Document:
        if number < 0 or number >= len(self._entries):
            raise KeyError(number)
        if self._loaded:
            return self._loaded[number]
        with self.path.open("rb") as handle:
            handle.seek(self._offsets[number])
            return Document.model_validate_json(handle.readline())

    def suspects(self, min_confidence: float | None, limit: int) -> list[Suspect]:
        return filter_suspects(self._entries, min_confidence, limit)

    def page_png(self, number: int, page: int) -> bytes:
        cached = self._pngs.get((number, page))
        if cached is not None:
            return cached
        document = self.document(number)
        dpi = page_dpi(document, page)
        source = self._locate(document.source)
        png = render_page(source, page, dpi=dpi, password=None, settings=self._settings)
        return self._pngs.put((number, page), png)

    def _locate(self, name: str) -> Source:
        """The file (or archive member's bytes) a Document's ``source`` names."""
        if name.startswith("<"):
            raise PageImageError(f"{name}: the source was not a file, so it cannot be redrawn")
        outer, bang, member = name.partition("!")
        path = self._find(outer)
        if path is None:
            places = ", ".join(str(r) for r in self._roots)
            raise PageImageError(f"{outer}: source file not found (looked in {places})")
        if not bang:
            return path
        wanted = f"{path}!{member}"
        for item in expand_sources([path], self._settings.limits()):
            if item.name == wanted and isinstance(item.source, bytes):
                return item.source
        raise PageImageError(f"{name}: no such member in the archive")

    def _find(self, name: str) -> Path | None:
        given = Path(name)
        candidates = [given] if given.is_absolute() else [r / given for r in self._roots]
        return next((c for c in candidates if c.is_file()), None)


def _looks_like_jsonl(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(64).lstrip()
    return head.startswith(b"{") or not head


def _read_other(path: Path) -> Iterable[Document]:
    """Parquet files and output folders, through the readers of ``docvlm.sinks``."""
    raise OutputError(
        f"{path}: not a JSONL of Documents (one per line, as `docvlm convert --json` writes)"
    )
