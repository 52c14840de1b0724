"""Sinks: where converted Documents go, chosen by the destination (``Output.open_sink``).

==========================  ==========================================================
``out.jsonl``               one Document per line (JSON Lines); cursor = byte offset
``out.parquet``             one flat row per result (``parquet.document_rows``); staged
                            in ``out.parquet.parts/`` and joined into the file on close
``out.parquet/``            a folder of Parquet parts (``part-000000.parquet``, ...)
``DIR/``                    per document a folder: the Document JSON, tables as CSV and
                            HTML, molecules as ``.sdf``, music as ``.musicxml``, and the
                            formats chosen (``docvlm.formats.files``; Markdown by default)
==========================  ==========================================================

Every sink writes first and makes it durable in ``commit()``, which returns a *cursor*:
the position to go back to. A runner stores the cursor in its manifest with the documents
it covers; on the next start, ``Output.open_sink(cursor=...)`` trims whatever was written
after it (a half-written line, an uncommitted part), so nothing appears twice or broken.
Without a cursor a sink starts empty. From Python::

    with open_sink("out.parquet") as sink:
        sink.write(document)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Protocol, Self

from docvlm.archive.disk import fsync_dir
from docvlm.archive.edits import LogEntry, apply_log, read_log
from docvlm.document import Document
from docvlm.formats.common import clean_table
from docvlm.results import MoleculeResult, MusicResult, TableResult
from docvlm.settings import Limits

__all__ = [
    "DEFAULT_FORMATS",
    "CorrectedSink",
    "FolderSink",
    "JsonlSink",
    "Sink",
    "with_corrections",
]


class Sink(Protocol):
    """Where Documents are written; see the module docstring for the cursor contract."""

    path: Path

    def write(self, document: Document) -> None:
        """Add one document (it may be buffered until ``commit``)."""
        ...

    def due(self) -> bool:
        """Whether enough is buffered (or enough time passed) that a commit is worth it."""
        ...

    def commit(self) -> str:
        """Make everything written durable; the cursor to resume from."""
        ...

    def compact(self) -> str:
        """Keep only the last record of each source (a retried or changed file replaced
        an earlier one), atomically; the cursor after it. Call after ``commit``."""
        ...

    def close(self) -> None:
        """Commit and finish the output (a single Parquet file is joined here)."""
        ...

    def abandon(self) -> None:
        """Let go without committing (after an error: a rerun trims to the last cursor)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


class _Base:
    path: Path

    def commit(self) -> str:
        raise NotImplementedError

    def compact(self) -> str:
        return self.commit()  # one folder per source name: a write replaces the old one

    def close(self) -> None:
        self.commit()

    def abandon(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class JsonlSink(_Base):
    """One Document per line, appended; ``commit`` flushes and fsyncs."""

    def __init__(self, path: Path, cursor: str | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if cursor is None or not path.exists():
            self._file: IO[bytes] = path.open("wb")
        else:
            self._file = path.open("r+b")
            # drop what was written after the last commit; a file shorter than the cursor
            # was compacted just before a kill (compaction only removes committed lines)
            self._file.truncate(min(int(cursor), path.stat().st_size))
            self._file.seek(0, os.SEEK_END)

    def write(self, document: Document) -> None:
        self._file.write(document.model_dump_json().encode() + b"\n")

    def due(self) -> bool:
        return True

    def commit(self) -> str:
        self._file.flush()
        os.fsync(self._file.fileno())
        return str(self._file.tell())

    def compact(self, correct: Callable[[bytes], bytes] | None = None) -> str:
        """Rewrite the file with the last line of each source, staged and renamed (each
        line through ``correct``: the destination's corrections, docs/corrections.md)."""
        self.commit()
        self._file.close()
        last: dict[str, int] = {}
        with self.path.open("rb") as lines:
            for number, line in enumerate(lines):
                last[json.loads(line)["source"]] = number
        keep = set(last.values())
        staging = self.path.with_name(f".{self.path.name}.compact")
        with self.path.open("rb") as lines, staging.open("wb") as out:
            kept = (line for number, line in enumerate(lines) if number in keep)
            out.writelines(map(correct, kept) if correct else kept)
            out.flush()
            os.fsync(out.fileno())
        staging.replace(self.path)
        fsync_dir(self.path.parent)
        self._file = self.path.open("ab")
        return str(self._file.tell())

    def close(self) -> None:
        if not self._file.closed:
            self.commit()
            self._file.close()

    def abandon(self) -> None:
        with contextlib.suppress(OSError):  # unflushed (a full disk): trimmed on resume
            self._file.close()


def folder_name(source: str) -> str:
    """A document's folder: its file name made safe, and a digest of the whole name (two
    ``page1.pdf`` in different folders or archives do not collide)."""
    base = re.split(r"[/\\!]", source)[-1] or "document"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:80] or "document"
    return f"{safe}-{hashlib.sha256(source.encode()).hexdigest()[:10]}"


def _files(document: Document) -> dict[str, str]:
    """File name -> text of everything written for one document."""
    files = {
        "document.json": document.model_dump_json(indent=2),
    }
    tables = document.tables or tuple(
        r for p in document.pages for r in p.results if isinstance(r, TableResult)
    )
    for index, table in enumerate(tables, 1):
        if table.table is not None:
            stem = f"table-p{table.page}-{index}"
            clean = clean_table(table.table)  # the formats' rule for control characters
            files[f"{stem}.csv"] = clean.to_csv()
            files[f"{stem}.html"] = clean.html
    for page in document.pages:
        for index, result in enumerate(page.results, 1):
            stem = f"p{page.number}-{index}"
            if isinstance(result, MoleculeResult) and result.molecule and result.molecule.molblock:
                files[f"molecule-{stem}.sdf"] = result.molecule.molblock.rstrip("\n") + "\n$$$$\n"
            if isinstance(result, MusicResult) and result.score and result.score.musicxml:
                files[f"music-{stem}.musicxml"] = result.score.musicxml
    return files


def recover_folders(path: Path) -> None:
    """Put back a document's folder left at ``.old-NAME`` by a crash while it was being
    replaced (``FolderSink.write``)."""
    for old in path.glob(".old-*"):
        final = path / old.name.removeprefix(".old-")
        if not final.exists():
            old.rename(final)


#: What an output folder holds besides document.json when no --formats are chosen.
DEFAULT_FORMATS = ("md",)


class FolderSink(_Base):
    """Per document a folder, staged under ``.tmp-NAME`` and renamed into place whole: its
    record, its tables, molecules and scores, and the ``formats`` chosen
    (``docvlm.formats.files``); ``password_for(source)`` opens an encrypted original for
    the searchable PDF. It starts by putting back a folder a crash left at ``.old-NAME``
    and (``clean_staging``; not for a correction's rewrite, which may run beside a live
    run's staging) deleting the ``.tmp-*`` folders a killed run left."""

    def __init__(
        self,
        path: Path,
        cursor: str | None = None,
        *,
        formats: Sequence[str] = DEFAULT_FORMATS,
        password_for: Callable[[str], str | None] | None = None,
        limits: Limits | None = None,
        clean_staging: bool = True,
    ) -> None:
        from docvlm.formats.files import parse_formats

        self.path = path
        self.formats = parse_formats(formats) if formats else ()
        self._password_for = password_for
        self._limits = limits
        path.mkdir(parents=True, exist_ok=True)
        recover_folders(path)
        if clean_staging:  # a correction's rewrite must not touch a live run's staging
            for stale in path.glob(".tmp-*"):  # staged by a run that was killed
                shutil.rmtree(stale, ignore_errors=True)

    def write(
        self, document: Document, *, keep_from: Path | None = None, original: bytes | None = None
    ) -> None:
        """Stage the document's folder and swap it in. ``keep_from``: a folder whose file
        of a format that cannot be written now is kept instead (a correction's rewrite);
        ``original``: the source's bytes when ``document.source`` does not lead to them."""
        name = folder_name(document.source)
        staging, final = self.path / f".tmp-{name}", self.path / name
        old = self.path / f".old-{name}"
        staging.mkdir()
        for file_name, text in _files(document).items():
            with (staging / file_name).open("w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        self._write_formats(document, staging, keep_from, original)
        if old.exists():  # left by a crash after its folder was restored: stale
            shutil.rmtree(old)
        if final.exists():  # the folder stays whole at one of its two names throughout
            final.rename(old)
        staging.rename(final)
        fsync_dir(self.path)
        shutil.rmtree(old, ignore_errors=True)

    def _write_formats(
        self, document: Document, staging: Path, keep_from: Path | None, original: bytes | None
    ) -> None:
        """The chosen formats; one that cannot be written is named in formats-errors.txt
        (the record is kept: a format is an extra)."""
        from docvlm.formats.files import FORMATS, write_formats

        password = self._password_for(document.source) if self._password_for else None
        failed = write_formats(
            document,
            staging,
            self.formats,
            password=password,
            limits=self._limits,
            original=original,
        )
        for name in list(failed) if keep_from is not None else ():
            kept = FORMATS[name].files.split("/")[0]
            if keep_from is not None and (keep_from / kept).exists():
                if (keep_from / kept).is_dir():
                    shutil.copytree(keep_from / kept, staging / kept)
                else:
                    shutil.copy2(keep_from / kept, staging / kept)
                failed[name] += f"; {kept} is kept as it was: it holds the uncorrected text"
        if failed:
            lines = "".join(f"{name}: {why}\n" for name, why in failed.items())
            (staging / "formats-errors.txt").write_text(lines, encoding="utf-8")
        for written in sorted(staging.rglob("*"), key=lambda p: -len(p.parts)):
            if written.is_file():
                with written.open("rb") as handle:
                    os.fsync(handle.fileno())
            else:
                fsync_dir(written)  # alto/, hocr/, page/: their entries survive a power loss
        fsync_dir(staging)

    def due(self) -> bool:
        return True

    def commit(self) -> str:
        fsync_dir(self.path)
        return str(time.time())


class CorrectedSink(_Base):
    """Writes every record, and compacts a JSONL file, with the destination's corrections."""

    def __init__(self, sink: Sink, entries: list[LogEntry]) -> None:
        self._sink, self._entries, self.path = sink, entries, sink.path
        self._sources = {key for entry in entries for key in (entry.sha256, *entry.sources)}

    def corrected(self, document: Document) -> Document:
        """``document`` with the corrections of its source applied (what ``write`` writes)."""
        known = bool({document.sha256, document.source} & self._sources)
        return apply_log(document, self._entries) if known else document

    def _line(self, line: bytes) -> bytes:
        if not any(sha.encode() in line for sha in self._sources):
            return line
        document = self.corrected(Document.model_validate_json(line))
        return document.model_dump_json().encode() + b"\n"

    def write(self, document: Document) -> None:
        self._sink.write(self.corrected(document))

    def due(self) -> bool:
        return self._sink.due()

    def commit(self) -> str:
        return self._sink.commit()

    def compact(self) -> str:
        if isinstance(self._sink, JsonlSink):
            return self._sink.compact(self._line)
        return self._sink.compact()

    def close(self) -> None:
        self._sink.close()

    def abandon(self) -> None:
        self._sink.abandon()


def with_corrections(sink: Sink, log: Path) -> Sink:
    """``sink`` as is when the corrections log ``log`` has no corrections, else a
    ``CorrectedSink``."""
    entries = [entry for entry in read_log(log) if entry.reviewed is None]
    return CorrectedSink(sink, entries) if entries else sink


def write_record(sink: Sink, document: Document) -> Document:
    """Write ``document``; the record as written, corrected: what a run yields and reports."""
    written = sink.corrected(document) if isinstance(sink, CorrectedSink) else document
    sink.write(document)
    return written
