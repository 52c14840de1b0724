"""The manifest: what a conversion into one destination has done, in SQLite (WAL).

It lives next to the destination (``Output.manifest_file``; ``Output.manifest()`` opens
it) and survives ``kill -9`` and reboots: every change is one committed transaction.
Page records are written with ``synchronous=NORMAL`` (a power cut may lose the last few,
which are then read again); the commit that records documents as written is
``synchronous=FULL``, and since the WAL is one sequential file, its fsync makes every
earlier record durable too. It records

- ``pages``: each finished page (done, or failed with its cause) keyed by the source's
  content hash, the job fingerprint (``records.JobKey``: tasks, checkpoints, prompts,
  resolution, DPI, token limits, page selection) and the page number, with the page's
  results (zlib-compressed JSON) so a resumed document needs no page read twice;
- ``documents``: each source name, ``pending`` until its record is in the sink, then
  ``written`` with its status;
- ``meta``: the sink's cursor (what the sink had made durable at the last commit; the sink
  trims anything after it on the next start) and the job keys;
- ``hashes``: content hashes by path, size and modification time, so a rerun over an
  unchanged archive does not read every file again.

Sink first, manifest second: a record is written and made durable, then committed here
with the new cursor. A crash in between leaves bytes after the cursor, which are trimmed.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from docvlm.document import Document
from docvlm.results import Page

__all__ = ["Manifest", "ManifestCounts"]

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pages (
    sha256 TEXT NOT NULL, job TEXT NOT NULL, page INTEGER NOT NULL,
    status TEXT NOT NULL, error TEXT, payload BLOB NOT NULL, finished REAL NOT NULL,
    PRIMARY KEY (sha256, job, page));
CREATE TABLE IF NOT EXISTS documents (
    source TEXT NOT NULL, job TEXT NOT NULL, sha256 TEXT, state TEXT NOT NULL,
    status TEXT, error TEXT, stop_error TEXT, pages INTEGER, failed_pages INTEGER,
    updated REAL NOT NULL, PRIMARY KEY (source, job));
CREATE INDEX IF NOT EXISTS documents_by_hash ON documents (sha256, job, state);
"""


@dataclass(frozen=True)
class ManifestCounts:
    """What ``docvlm status`` prints."""

    files_done: int
    files_partial: int
    files_failed: int
    files_pending: int
    pages_done: int
    pages_failed: int
    cursor: str | None


class Manifest:
    """One destination's manifest; safe to share between the threads of one process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_TABLES)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already (disk full)
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, *args: object) -> tuple[object, ...] | None:
        with self._lock:
            row: tuple[object, ...] | None = self._db.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # --- the job and the sink ----------------------------------------------------------

    def reset(self) -> None:
        """Forget everything (``--redo``): the sink starts over too."""
        with self._transaction() as db:
            for table in ("meta", "pages", "documents"):
                db.execute(f"DELETE FROM {table}")

    def register_job(self, fingerprint: str, key_json: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (f"job:{fingerprint}", key_json))

    def cursor(self) -> str | None:
        """The sink's position at the last commit (None: nothing committed yet)."""
        row = self._one("SELECT value FROM meta WHERE key = 'cursor'")
        return None if row is None else str(row[0])

    # --- content hashes ----------------------------------------------------------------

    def known_hash(self, path: Path) -> str | None:
        """The stored hash of ``path`` if its size and modification time are unchanged."""
        stat = path.stat()
        row = self._one(
            "SELECT sha256 FROM hashes WHERE path = ? AND size = ? AND mtime_ns = ?",
            str(path),
            stat.st_size,
            stat.st_mtime_ns,
        )
        return None if row is None else str(row[0])

    def remember_hash(self, path: Path, sha256: str) -> None:
        stat = path.stat()
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?)",
                (str(path), stat.st_size, stat.st_mtime_ns, sha256),
            )

    # --- pages -------------------------------------------------------------------------

    def record_page(self, sha256: str, job: str, page: Page) -> None:
        """Commit one finished page. Recording the same page twice is an error (a page is
        never read again once it is here), so a plain INSERT."""
        payload = zlib.compress(page.model_dump_json().encode(), 6)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO pages VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sha256, job, page.number, page.status, page.error, payload, time.time()),
            )

    def finished_pages(self, sha256: str, job: str) -> dict[int, Page]:
        """The pages of this content already finished under this job, by number."""
        rows = self._all(
            "SELECT page, payload FROM pages WHERE sha256 = ? AND job = ? ORDER BY page",
            sha256,
            job,
        )
        pages = {}
        for number, payload in rows:
            assert isinstance(number, int) and isinstance(payload, bytes)
            pages[number] = Page.model_validate_json(zlib.decompress(payload))
        return pages

    # --- documents ---------------------------------------------------------------------

    def written_status(self, source: str, job: str, sha256: str | None) -> str | None:
        """The recorded status of ``source`` if it was written under this job with these
        bytes (a changed file is converted again; ``None``: a source with no bytes to hash,
        such as a missing file), else None."""
        row = self._one(
            "SELECT status FROM documents WHERE source = ? AND job = ? AND sha256 IS ? "
            "AND state = 'written'",
            source,
            job,
            sha256,
        )
        return None if row is None else str(row[0])

    def written_content(
        self, sha256: str, job: str, *, successful: bool = False
    ) -> tuple[str, str | None] | None:
        """A name these bytes were already written under, with the error that stopped the
        source (None when it was read to the end), or None; ``successful``: only a name
        recorded as ``success`` counts (a retry reads failed content again)."""
        row = self._one(
            "SELECT source, stop_error FROM documents WHERE sha256 = ? AND job = ? "
            "AND state = 'written' AND (status = 'success' OR NOT ?) LIMIT 1",
            sha256,
            job,
            successful,
        )
        return None if row is None else (str(row[0]), None if row[1] is None else str(row[1]))

    def forget_failed_pages(self, sha256: str, job: str) -> None:
        """Drop this content's failed pages so that a retry reads them again."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM pages WHERE sha256 = ? AND job = ? AND status = 'error'",
                (sha256, job),
            )

    def needs_compaction(self) -> bool:
        """Whether a record in the sink was replaced (a retried or changed file) since the
        sink was last compacted to one record per source."""
        return self._one("SELECT value FROM meta WHERE key = 'compact'") is not None

    def compacted(self, cursor: str) -> None:
        """The sink now holds one record per source, up to ``cursor``."""
        with self._transaction(durable=True) as db:
            db.execute("DELETE FROM meta WHERE key = 'compact'")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('cursor', ?)", (cursor,))

    def start(self, source: str, sha256: str | None, job: str) -> None:
        """Mark ``source`` pending (it is being converted). Converting a name written
        before (a retry, or changed bytes) flags the sink for compaction: its new record
        replaces the old one."""
        with self._transaction() as db:
            if db.execute(
                "SELECT 1 FROM documents WHERE source = ? AND job = ? AND state = 'written'",
                (source, job),
            ).fetchone():
                db.execute("INSERT OR REPLACE INTO meta VALUES ('compact', '1')")
            db.execute(
                "INSERT OR REPLACE INTO documents (source, job, sha256, state, updated) "
                "VALUES (?, ?, ?, 'pending', ?)",
                (source, job, sha256, time.time()),
            )

    def commit_written(
        self, written: Iterable[tuple[Document, str, str | None]], cursor: str
    ) -> None:
        """One transaction: these (document, job, stop error) are in the sink up to
        ``cursor``."""
        now = time.time()
        with self._transaction(durable=True) as db:
            for document, job, stop_error in written:
                failed = sum(1 for p in document.pages if p.status == "error")
                replaced = db.execute(
                    "SELECT 1 FROM documents WHERE source = ? AND job = ? AND state = 'written'",
                    (document.source, job),
                ).fetchone()
                if replaced is not None:  # the sink now holds two records of this source
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('compact', '1')")
                db.execute(
                    "INSERT OR REPLACE INTO documents VALUES "
                    "(?, ?, ?, 'written', ?, ?, ?, ?, ?, ?)",
                    (
                        document.source,
                        job,
                        document.sha256,
                        document.status,
                        document.error,
                        stop_error,
                        len(document.pages),
                        failed,
                        now,
                    ),
                )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('cursor', ?)", (cursor,))

    def counts(self) -> ManifestCounts:
        by_status = dict(
            (str(status), int(str(n)))
            for status, n in self._all(
                "SELECT coalesce(status, state), count(*) FROM documents GROUP BY 1"
            )
        )
        pages = dict(
            (str(status), int(str(n)))
            for status, n in self._all("SELECT status, count(*) FROM pages GROUP BY status")
        )
        return ManifestCounts(
            files_done=by_status.get("success", 0),
            files_partial=by_status.get("partial", 0),
            files_failed=by_status.get("failure", 0),
            files_pending=by_status.get("pending", 0),
            pages_done=sum(n for s, n in pages.items() if s != "error"),
            pages_failed=pages.get("error", 0),
            cursor=self.cursor(),
        )
