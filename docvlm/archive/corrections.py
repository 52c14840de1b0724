"""Corrections kept in a destination: an append-only log, page versions, and the records
read back with the corrections applied.

The log is JSON Lines (``edits.LogEntry``), ``DIR/_corrections.jsonl`` in an output folder
and ``FILE.corrections.jsonl`` beside a JSONL or Parquet file (``Output.corrections_file``).
A page's version is the number of corrections made to it.
``Output.existing(out).corrections().apply(correction)`` checks the edit the way model
output is checked, refuses it (``CorrectionError``) or, when it was made against an older
version and another edit since changed the same place, refuses it with the current version
(``VersionConflict``); edits to other places of the page are merged. An output folder's
document is written again at once (its record and every format it holds); a JSONL file
when it is compacted, a Parquet file's rows when a run writes them again, both when
exported (``corrected_documents``). Sinks replay the log on every record they write, so a
rerun keeps the corrections (``edits.apply_log``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from docvlm.archive.edits import (
    Correction,
    CorrectionError,
    LogEntry,
    VersionConflict,
    apply_entry,
    apply_log,
    now,
    read_entries,
    read_log,
)
from docvlm.document import Document

__all__ = ["Corrections", "Destination", "corrected_documents", "read_log"]


class Destination(Protocol):
    """What corrections need of an output: ``docvlm.archive.output.Output`` (which opens
    them with ``Output.corrections()``; this module does not import it, output.py imports
    this one)."""

    @property
    def kind(self) -> str: ...

    @property
    def path(self) -> Path: ...

    @property
    def corrections_file(self) -> Path: ...

    def lock(self, *, wait: bool = False) -> AbstractContextManager[object]: ...

    def stored(self) -> Iterator[tuple[Path | None, Document]]: ...


def corrected_documents(output: Destination) -> Iterator[Document]:
    """The records of an output (``Output.existing(path)``) with its corrections applied:
    what ``docvlm export`` writes, and what a JSONL file holds after its next compaction."""
    entries = read_log(output.corrections_file)
    for _, document in output.stored():
        yield apply_log(document, entries) if entries else document


class Corrections:
    """The corrections of one destination: apply one, read versions and review marks.

    Safe across processes: each ``apply`` holds a lock on the log while it reads what
    others appended, checks the version and appends its entry, and (``lock``, unless the
    caller holds it already) the destination's ``DestinationLock``, without waiting: while
    a conversion writes the destination, ``apply`` raises ``DestinationBusyError``. ``root``:
    where the relative sources lie, for a format rewritten from the original (the PDF).
    Made by ``Output.corrections()``: ``Output.existing("out/").corrections()``."""

    def __init__(self, output: Destination, *, lock: bool = True, root: Path | None = None) -> None:
        self.output = output
        self.destination = self.output.path
        self.root = root
        self._lock = lock
        self.kind = self.output.kind
        self.log = self.output.corrections_file
        self.entries: list[LogEntry] = []
        self._read_to = 0
        self._documents: dict[str, list[tuple[Path | None, Document]]] | None = None
        self._catch_up()

    def refresh(self) -> None:
        """Read what others appended to the log since (another process's saves)."""
        self._catch_up()

    def version(self, sha256: str, page: int) -> int:
        """The page's version: how many corrections it has had."""
        return sum(1 for e in self.entries if (e.sha256, e.page) == (sha256, page))

    def reviewed(self, sha256: str, page: int) -> bool:
        """Whether the page's last review mark says reviewed."""
        marks = [e.reviewed for e in self.entries if (e.sha256, e.page) == (sha256, page)]
        return bool([m for m in marks if m is not None][-1:] == [True])

    def documents(self, sha256: str) -> list[Document]:
        """The records of the source with these bytes, corrected (a source met under two
        names has two)."""
        return [document for _, document in self._index().get(sha256, [])]

    def apply(self, correction: Correction, *, by: str | None = None) -> LogEntry:
        """Check and apply one correction, log it, and rewrite what holds it; the entry
        logged. ``CorrectionError`` (nothing changed) when it does not check."""
        with contextlib.ExitStack() as locks:
            locks.enter_context(self._locked())  # other savers wait here, one at a time
            if self._lock:  # then fails at once while a conversion writes the destination
                locks.enter_context(self.output.lock())
            self._catch_up()
            current = self.version(correction.sha256, correction.page)
            self._check_version(correction, current)
            held = self._index().get(correction.sha256)
            if not held:
                raise CorrectionError(f"no record of a source with sha256 {correction.sha256}")
            changed: list[tuple[Path | None, Document]] = []
            before = after = raw = None
            for folder, document in held:
                fixed, before, after = apply_entry(document, correction)
                changed.append((folder, fixed))
                raw = _raw(document, correction)
            entry = LogEntry(
                **correction.model_dump(exclude={"version", "by"}),
                by=by or correction.by,
                version=current + 1,
                time=now(),
                before=before if correction.reviewed is None else None,
                after=after if correction.reviewed is None else None,
                raw=raw,
                sources=tuple(document.source for _, document in held),
            )
            _append(self.log, entry)
            self.entries.append(entry)
            self._read_to = self.log.stat().st_size
            self._index()[correction.sha256] = changed
            if correction.reviewed is None:  # under the lock: the next saver reads this
                for folder, document in changed:
                    if folder is not None:
                        _rewrite(self.destination, folder, document, self.root)
        return entry

    def _check_version(self, correction: Correction, current: int) -> None:
        made = correction.version
        where = f"page {correction.page}"
        if made is None or made == current:
            return
        if made > current:
            raise VersionConflict(
                f"{where} has no version {made} (it is at version {current})", current=current
            )
        key = (correction.sha256, correction.page)
        page = [e for e in self.entries if (e.sha256, e.page) == key]
        for entry in page[made:]:
            if entry.overlaps(correction):
                who = f" by {entry.by}" if entry.by else ""
                raise VersionConflict(
                    f"{where} changed since version {made}: {entry.target} was corrected"
                    f"{who} at {entry.time}; it is at version {current} now",
                    current=current,
                )

    def _catch_up(self) -> None:
        """Read what was appended to the log since last read (by this or another process)."""
        if not self.log.exists():
            return
        with self.log.open("rb") as handle:
            handle.seek(self._read_to)
            data = handle.read()
        end = data.rfind(b"\n") + 1  # a line half-written by another process waits
        fresh = read_entries(data[:end], self.log)
        self._read_to += end
        if fresh:
            self._documents = None  # others' edits: read the records again
        self.entries.extend(fresh)

    def _index(self) -> dict[str, list[tuple[Path | None, Document]]]:
        if self._documents is None:
            self._documents = {}
            for folder, document in self.output.stored():
                key = document.sha256
                if key is not None:
                    # a file's records wait for their compaction; a folder killed between
                    # the log and its rewrite is healed (the entries are idempotent)
                    document = apply_log(document, self.entries)
                    self._documents.setdefault(key, []).append((folder, document))
        return self._documents

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as handle:
            try:
                import fcntl
            except ImportError:  # not POSIX: one writer assumed
                yield
                return
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _raw(document: Document, correction: Correction) -> str | None:
    if correction.result is None:
        return None
    page = next(p for p in document.pages if p.number == correction.page)
    return page.results[correction.result].raw


def _append(path: Path, entry: LogEntry) -> None:
    with path.open("ab") as handle:
        handle.write(entry.model_dump_json(exclude_none=True).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def _formats_in(folder: Path) -> tuple[str, ...]:
    """The formats a document's folder was written with (their files are there)."""
    from docvlm.formats.files import FORMATS

    return tuple(
        name for name, spec in FORMATS.items() if (folder / spec.files.split("/")[0]).exists()
    )


def _rewrite(destination: Path, folder: Path, document: Document, root: Path | None) -> None:
    """The document's folder written again, whole, with the formats it had; one that cannot
    be written again (its original gone) keeps its file, which formats-errors.txt says."""
    from docvlm.archive.sinks import FolderSink

    original = None
    if root is not None and not Path(document.source).is_absolute():
        with contextlib.suppress(OSError, RuntimeError, ValueError):  # a loop, a NUL
            path = (root / document.source).resolve()
            # a record is data: its source opens only under root (not ../, not a link out)
            if path.is_relative_to(root.resolve()) and path.is_file():
                original = path.read_bytes()
    formats = _formats_in(folder)
    with FolderSink(destination, formats=formats, clean_staging=False) as sink:
        sink.write(document, keep_from=folder, original=original)
