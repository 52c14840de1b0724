"""Where a conversion's records go: ``Output``, the destination parsed once.

The kind comes from the spelling: ``x.jsonl`` (JSON Lines), ``x.parquet`` (one Parquet
file), ``x.parquet/`` (a folder of Parquet parts), ``x.jsonl/`` (a folder of JSON Lines
parts, written by the Ray runner only) and ``DIR`` or ``DIR/`` (an output folder, one
folder per document). A folder is one however it is spelled (a trailing ``/``, an existing
folder, or a name without a suffix). Beside it, each written once here: the manifest
(``DIR/_manifest.sqlite`` in a folder, ``FILE.manifest.sqlite`` beside a file), the
corrections log (``DIR/_corrections.jsonl``, ``FILE.corrections.jsonl``) and the lock
(``NAME.lock`` beside the destination: ``DIR`` and ``DIR/`` take one, and so do
``x.parquet`` and ``x.parquet/``, which cannot both be there). docs/etl.md's table of
``DESTINATIONS`` is checked against this code by a test. A URI (``s3://b/out.parquet/``)
is written by the Ray runner only and has no lock.

Three constructors, each used once at the edge: ``Output.parse`` for a destination to
write (its spelling), ``Output.existing`` for an output to read (what is there: ``docvlm
view``, ``review``, ``export``, ``correct``), ``Output.parts`` for the Ray runner's folder
of parts. Everything else takes the ``Output``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from docvlm.archive.readback import (
    JOB_FILE,
    OutputError,
    document_files,
    load_document,
    looks_like_jsonl,
    part_files,
    read_parquet,
)
from docvlm.errors import SettingsError

if TYPE_CHECKING:
    from docvlm.archive.corrections import Corrections
    from docvlm.archive.manifest import Manifest
    from docvlm.archive.sinks import Sink
    from docvlm.document import Document
    from docvlm.settings import Limits

__all__ = ["DESTINATIONS", "Kind", "Output", "OutputError", "PartFormat", "is_uri", "open_sink"]

Kind = Literal["jsonl", "parquet", "parquet-parts", "jsonl-parts", "folder"]
#: What the Ray runner's parts hold (``Output.parts``).
PartFormat = Literal["parquet", "jsonl"]
_FOLDERS = ("parquet-parts", "jsonl-parts", "folder")
#: suffix -> (the kind of a file of that name, the kind of a folder of that name)
_SUFFIXES: dict[str, tuple[Kind, Kind]] = {
    ".jsonl": ("jsonl", "jsonl-parts"),
    ".ndjson": ("jsonl", "jsonl-parts"),
    ".parquet": ("parquet", "parquet-parts"),
}

#: The spellings docs/etl.md lists (``tests/archive/test_output.py`` checks them).
DESTINATIONS = ("x.jsonl", "x.parquet", "x.parquet/", "x.jsonl/", "DIR", "DIR/")


def is_uri(text: str | Path) -> bool:
    """Whether ``text`` is a URI (``s3://``, ``gs://``, ...) rather than a local path."""
    return "://" in str(text)


@dataclass(frozen=True)
class Output:
    """A destination: its ``kind`` and ``location`` (a local Path, or a URI string), and
    every place derived from them. ``str()`` spells it back, folders with a ``/``."""

    kind: Kind
    location: Path | str

    # --- constructors: the only places a destination's spelling is read -------------

    @classmethod
    def parse(cls, destination: str | Path) -> Output:
        """The destination to write that ``destination`` names (the module docstring).
        ValueError for a suffix docvlm does not write (``x.md``: one of a document's
        formats, written into an output folder); ``SettingsError`` for a folder spelled
        where a file of that name is."""
        text = str(destination)
        location = _location(destination)
        folder = text.endswith(("/", os.sep)) or (isinstance(location, Path) and location.is_dir())
        suffix = PurePosixPath(str(location)).suffix.lower()
        if suffix in _SUFFIXES:
            file_kind, folder_kind = _SUFFIXES[suffix]
            kind = folder_kind if folder else file_kind
        elif folder or not suffix:
            kind = "folder"
        else:
            raise ValueError(_unknown_suffix(text, suffix))
        output = cls(kind, location)
        output._check_in_the_way()
        return output

    @classmethod
    def existing(cls, path: str | Path) -> Output:
        """The output at ``path``, by what is there: a folder of ``NAME/document.json``,
        of ``*.parquet`` or of ``part-*.jsonl``, a Parquet file, or a JSON Lines file (by
        its first bytes). ``OutputError`` naming ``path`` when it is none of them."""
        location = Path(path).expanduser()
        kind: Kind | None = None
        if location.is_file():
            if location.suffix.lower() == ".parquet":
                kind = "parquet"
            elif looks_like_jsonl(location):
                kind = "jsonl"
        elif location.is_dir():
            if document_files(location):
                kind = "folder"
            elif any(location.glob("*.parquet")):
                kind = "parquet-parts"
            elif any(location.glob("part-*.jsonl")):
                kind = "jsonl-parts"
        if kind is None:
            raise OutputError(
                f"{path}: not a conversion output (a JSONL of Documents, a Parquet file or "
                "folder of parts, a folder of JSONL parts, or an output folder of "
                "NAME/document.json)"
            )
        return cls(kind, location)

    @classmethod
    def parts(cls, destination: str | Path, output_format: PartFormat | None = None) -> Output:
        """The Ray runner's folder of parts that ``destination`` names, a file spelling
        or a bare name included: JSON Lines parts for ``output_format="jsonl"`` or a name
        ending ``.jsonl``/``.ndjson``, else Parquet parts."""
        location = _location(destination)
        named = _SUFFIXES.get(PurePosixPath(str(location)).suffix.lower(), ("parquet",))[0]
        chosen = output_format or ("jsonl" if named == "jsonl" else "parquet")
        output = cls("jsonl-parts" if chosen == "jsonl" else "parquet-parts", location)
        output._check_in_the_way()
        return output

    # --- what it is -------------------------------------------------------------------

    def __str__(self) -> str:
        return f"{self.location}/" if self.is_folder else str(self.location)

    @property
    def is_uri(self) -> bool:
        return isinstance(self.location, str)

    @property
    def is_folder(self) -> bool:
        """Whether the records go into a folder (parts, or a folder per document)."""
        return self.kind in _FOLDERS

    @property
    def path(self) -> Path:
        """The local path; ``SettingsError`` for a URI (only the Ray runner writes one)."""
        if isinstance(self.location, str):
            raise self._uri_only()
        return self.location

    def _uri_only(self) -> SettingsError:
        return SettingsError(
            f"{self}: a URI is written by the Ray runner only (docvlm convert --ray); "
            "the local runner writes a local path"
        )

    # --- the places beside it, each written once ----------------------------------------

    @property
    def manifest_file(self) -> Path:
        """``DIR/_manifest.sqlite`` in a folder (readers of Parquet datasets skip names
        starting with ``_``), else ``FILE.manifest.sqlite`` beside the file."""
        return self._beside("_manifest.sqlite", ".manifest.sqlite")

    @property
    def corrections_file(self) -> Path:
        """The corrections log (docs/corrections.md), beside the manifest."""
        return self._beside("_corrections.jsonl", ".corrections.jsonl")

    @property
    def lock_file(self) -> Path | None:
        """``NAME.lock`` beside the destination, whatever its spelling (a file destination
        has no folder of its own to hold it); None for a URI."""
        if isinstance(self.location, str):
            return None
        path = self.location.resolve()
        return path.with_name(path.name + ".lock")

    def _beside(self, inside: str, suffix: str) -> Path:
        path = self.path
        return path / inside if self.is_folder else path.with_name(path.name + suffix)

    # --- what lives there -------------------------------------------------------------

    def lock(self, *, wait: bool = False) -> AbstractContextManager[object]:
        """The destination's ``DestinationLock`` (``docvlm.archive.lock``), held by one run
        at a time; nothing to hold for a URI."""
        from docvlm.archive.lock import DestinationLock

        if self.lock_file is None:
            return nullcontext()
        return DestinationLock(self.lock_file, str(self), wait=wait)

    def manifest(self) -> Manifest:
        """The manifest of what runs into this destination did (opened, or created)."""
        from docvlm.archive.manifest import Manifest

        return Manifest(self.manifest_file)

    def check_local(self) -> None:
        """``SettingsError`` unless the local runner can write here: not a URI, not a
        folder of JSON Lines parts, no file where a folder is asked for, and not a folder
        the Ray runner wrote (its parts are named by digest, not numbered)."""
        if self.kind == "jsonl-parts":
            raise SettingsError(
                f"{self}: a folder of JSON Lines parts is written by the Ray runner only: "
                f"use --ray, or --out {self.location} for one JSON Lines file"
            )
        if self.is_uri:
            raise self._uri_only()
        self._check_in_the_way()
        if self.is_folder and (self.path / JOB_FILE).is_file():
            raise SettingsError(
                f"{self}: a folder of parts the Ray runner wrote (it holds {JOB_FILE}): "
                "use --ray to write into it, or another --out"
            )

    def open_sink(
        self,
        *,
        cursor: str | None = None,
        formats: Sequence[str] | None = None,
        password_for: Callable[[str], str | None] | None = None,
        limits: Limits | None = None,
    ) -> Sink:
        """The sink that writes here (``docvlm.archive.sinks``); ``cursor`` resumes one
        that a runner committed, None starts it empty. ``formats`` (an output folder only;
        ValueError otherwise) chooses what each document's folder holds besides its
        record. Every record written gets the destination's corrections."""
        from docvlm.archive.sinks import DEFAULT_FORMATS, FolderSink, JsonlSink, with_corrections

        self.check_local()
        if formats and self.kind != "folder":
            raise ValueError(
                f"{self}: the formats are written per document into an output folder "
                "(a destination ending in /)"
            )
        path = self.path
        sink: Sink
        if self.kind == "jsonl":
            sink = JsonlSink(path, cursor)
        elif self.kind == "folder":
            chosen = DEFAULT_FORMATS if formats is None else tuple(formats)
            sink = FolderSink(
                path, cursor, formats=chosen, password_for=password_for, limits=limits
            )
        else:
            from docvlm.archive.parquet import ParquetFileSink, ParquetPartsSink

            parts = self.kind == "parquet-parts"
            sink = ParquetPartsSink(path, cursor) if parts else ParquetFileSink(path, cursor)
        return with_corrections(sink, self.corrections_file)

    def records(self) -> Iterator[Document]:
        """The records as written, in write order (parts as ``part_files`` orders them:
        the local runner's by number, the Ray runner's by the time each was written);
        ``OutputError`` naming the file and line of one that does not load."""
        path = self.path
        if self.kind == "folder":
            for file in document_files(path):  # not .tmp-NAME staged, nor .old-NAME replaced
                yield load_document(file.read_bytes(), str(file))
        elif self.kind in ("jsonl", "jsonl-parts"):
            for file in part_files(path, "part-*.jsonl") if self.is_folder else [path]:
                with file.open("rb") as handle:
                    for number, line in enumerate(handle, start=1):
                        if line.strip():
                            yield load_document(line, f"{file}, line {number}")
        else:
            yield from read_parquet(path)

    def stored(self) -> Iterator[tuple[Path | None, Document]]:
        """The records as the destination holds them, one per source: the last written
        (a run killed before compaction, or a Ray rerun after a source's bytes changed,
        leaves earlier ones), with the folder each one is in (None outside an output
        folder)."""
        if self.kind == "folder":
            for file in document_files(self.path):
                yield file.parent, load_document(file.read_bytes(), str(file))
            return
        last: dict[str, Document] = {}
        for document in self.records():
            last.pop(document.source, None)  # a later record of a source replaces it
            last[document.source] = document
        for document in last.values():
            yield None, document

    def corrections(self, *, root: Path | None = None, lock: bool = True) -> Corrections:
        """The corrections of this destination (``docvlm.archive.corrections``)."""
        from docvlm.archive.corrections import Corrections

        return Corrections(self, root=root, lock=lock)

    def _check_in_the_way(self) -> None:
        if isinstance(self.location, str) or not self.is_folder:
            return
        if self.location.exists() and not self.location.is_dir():
            raise SettingsError(
                f"{self.location}/: a file of that name is in the way (a folder cannot be "
                "written there): choose another --out, or write the file's form (without the /)"
            )


def open_sink(
    destination: str | Path,
    *,
    cursor: str | None = None,
    formats: Sequence[str] | None = None,
    password_for: Callable[[str], str | None] | None = None,
    limits: Limits | None = None,
) -> Sink:
    """``Output.parse(destination).open_sink(...)``: Documents written to ``.jsonl``,
    ``.parquet``, ``NAME.parquet/`` or ``DIR/`` from Python::

        with open_sink("out.parquet") as sink:
            sink.write(document)
    """
    return Output.parse(destination).open_sink(
        cursor=cursor, formats=formats, password_for=password_for, limits=limits
    )


def _location(destination: str | Path) -> Path | str:
    """A URI as given (without its trailing ``/``), else the local path (``~`` expanded)."""
    if is_uri(destination):
        return str(destination).rstrip("/")
    return Path(destination).expanduser()


def _unknown_suffix(text: str, suffix: str) -> str:
    from docvlm.formats.files import formats_by_suffix

    format_of = formats_by_suffix()
    if suffix in format_of:
        return (
            f"{text}: docvlm writes {suffix[1:]} files per document, into an output folder: "
            f"use --out DIR/ --formats {format_of[suffix]} (each document's files in "
            "DIR/NAME-<hash>/, see docs/etl.md)"
        )
    return (
        f"{text}: cannot tell the output format from {suffix!r}; use a .jsonl or .parquet "
        "file, a folder of Parquet parts (NAME.parquet/) or an output folder (DIR/)"
    )
