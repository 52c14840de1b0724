"""What a run shows while it goes: a rich progress bar on a terminal, JSON lines otherwise.

JSON lines (one object per line on stderr, for log collectors)::

    {"event": "start", "files": 120}
    {"event": "document", "source": "a.pdf", "status": "success", "pages": 3, ...}
    {"event": "ignored", "source": "scans/README.txt", "reason": "not a document ..."}
    {"event": "correction_not_applied", "source": "a.pdf", "page": 2, "warning": "..."}
    {"event": "summary", "files_done": 118, ..., "exit_code": 1}
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from docvlm.archive.edits import not_applied
from docvlm.archive.runner import Summary
from docvlm.document import Document

__all__ = ["JsonLog", "LogFormat", "RichProgress", "observer_for", "summary_line"]

LogFormat = Literal["auto", "rich", "json"]


def summary_line(summary: Summary) -> str:
    """The summary for people, one line: files read in this run by outcome, the time with
    the model loading, and why the exit code is what it is."""
    files = summary.files_done + summary.files_partial + summary.files_failed
    stopped = ""
    if summary.stopped and summary.error_rate is not None and summary.max_error_rate is not None:
        stopped = (
            f" (stopped: {summary.error_rate:.0%} of files failed, over the "
            f"--max-error-rate of {summary.max_error_rate:.0%})"
        )
    earlier = ""
    if summary.files_failed_earlier:
        earlier = (
            f" ({summary.files_failed_earlier} file(s) failed or partial in earlier runs; "
            "--retry-failed converts them again)"
        )
    return (
        f"{files} file(s) read in {summary.seconds + summary.load_seconds:.1f} s "
        f"({summary.load_seconds:.1f} s loading the model){stopped}: "
        f"{summary.files_done} converted, {summary.files_partial} partial, "
        f"{summary.files_failed} failed, {summary.files_skipped} skipped (already done), "
        f"{summary.files_ignored} ignored (not documents or filtered out); "
        f"pages {summary.pages_done} done, {summary.pages_failed} failed, "
        f"{summary.pages_reused} reused; {summary.pages_per_second:.2f} pages/s; "
        f"engine busy {summary.engine_busy:.0%}; exit {summary.exit_code}{earlier}"
    )


class JsonLog:
    """One JSON object per line: start, each document, the summary."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stderr
        self._last = time.perf_counter()

    def _emit(self, record: dict[str, object]) -> None:
        self._stream.write(json.dumps(record) + "\n")
        self._stream.flush()

    def started(self, total_files: int | None) -> None:
        self._last = time.perf_counter()  # a document's seconds never count the model loading
        self._emit({"event": "start", "files": total_files})

    def ignored(self, name: str, why: str) -> None:
        self._emit({"event": "ignored", "source": name, "reason": why})

    def document(self, document: Document, *, skipped: bool, pages: int) -> None:
        now = time.perf_counter()
        self._emit(
            {
                "event": "skipped" if skipped else "document",
                "source": document.source,
                "sha256": document.sha256,
                "status": document.status,
                "pages": pages,
                "failed_pages": sum(1 for p in document.pages if p.status == "error"),
                "error": document.error,
                "seconds": round(now - self._last, 3),
            }
        )
        self._last = now
        for page, warning in not_applied(document):  # a correction the new reading lost
            record = {"source": document.source, "sha256": document.sha256, "page": page}
            self._emit({"event": "correction_not_applied", **record, "warning": warning})

    def finished(self, summary: Summary) -> None:
        self._emit({"event": "summary", **summary.model_dump()})


class RichProgress:
    """A bar of files with pages, pages/s and the time left; bad files printed above it."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files, {task.fields[pages]} pages, {task.fields[rate]:.2f} pages/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._job = self._bar.add_task("converting", total=None, pages=0, rate=0.0)
        self._pages = 0
        self._start = time.perf_counter()

    def started(self, total_files: int | None) -> None:
        self._start = time.perf_counter()
        self._bar.update(self._job, total=total_files)
        self._bar.start()

    def ignored(self, name: str, why: str) -> None:
        self._shrink()

    def _shrink(self) -> None:
        """One file fewer to convert (skipped or left out): the bar counts conversions."""
        total = self._bar.tasks[0].total
        if total is not None:
            self._bar.update(self._job, total=max(total - 1, 0))

    def document(self, document: Document, *, skipped: bool, pages: int) -> None:
        if skipped:
            self._shrink()
            return
        self._pages += pages
        rate = self._pages / max(time.perf_counter() - self._start, 1e-9)
        if document.status != "success":
            self._console.print(f"error: {document.source}: {document.error}", soft_wrap=True)
        for _, warning in not_applied(document):  # it names the source, page and place
            self._console.print(f"warning: {warning} (kept in the log)", soft_wrap=True)
        self._bar.update(self._job, advance=1, pages=self._pages, rate=rate)

    def finished(self, summary: Summary) -> None:
        self._bar.stop()
        self._console.print(summary_line(summary), soft_wrap=True, highlight=False)


def observer_for(log_format: LogFormat, console: Console) -> JsonLog | RichProgress:
    """Rich progress on a terminal (or when asked), JSON lines otherwise."""
    if log_format == "rich" or (log_format == "auto" and console.is_terminal):
        return RichProgress(console)
    return JsonLog()
