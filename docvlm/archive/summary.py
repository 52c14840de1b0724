"""What an archive run reports: its ``Summary`` (with an exit code from
``docvlm.errors.ExitCode``) and the ``Observer`` told as it goes. Kept apart from the runner
so that the command line, the progress display and the Ray runner share them without the
runner's machinery.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from docvlm.document import Document
from docvlm.reading.render import Source

__all__ = [
    "MIN_FILES_FOR_RATE",
    "Observer",
    "Summary",
    "count_files",
]

#: ``max_error_rate`` is judged once this many files finished (a first bad file alone
#: does not stop a job).
MIN_FILES_FOR_RATE = 10


class Summary(BaseModel):
    """What a run did; printed at the end and returned by ``Run.summary``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    files_done: int = Field(description="files converted in full")
    files_partial: int = Field(description="files converted in part (some pages failed)")
    files_failed: int = Field(description="files that could not be converted")
    files_skipped: int = Field(description="files already written by an earlier run")
    files_ignored: int = Field(
        description="files in folders left out: not documents, or by --include/--exclude"
    )
    pages_done: int = Field(description="pages read, in the files written by this run")
    pages_failed: int = Field(description="pages that failed, in the files written by this run")
    pages_reused: int = Field(description="of those, pages an interrupted run had already read")
    seconds: float = Field(description="wall time of the reading, after the models loaded")
    load_seconds: float = Field(default=0.0, description="wall time loading the models")
    pages_per_second: float = Field(description="pages read (done or failed) per second")
    engine_busy: float = Field(description="fraction of the wall time the engine worked")
    stopped: bool = Field(description="stopped early by --max-error-rate")
    error_rate: float | None = Field(
        default=None, description="failed or partial files / finished files, when stopped"
    )
    max_error_rate: float | None = Field(default=None, description="the limit it crossed")
    files_failed_earlier: int = Field(
        default=0,
        description="of the skipped files, those an earlier run recorded as failed or partial "
        "(they keep the exit code at 1; retry_failed converts them again)",
    )
    exit_code: int = Field(description="an ExitCode: 0 all converted, 1 some failed, 3 stopped")


class Observer(Protocol):
    """Told about the run as it goes (the CLI draws progress or logs JSON lines)."""

    def started(self, total_files: int | None) -> None: ...

    def document(self, document: Document, *, skipped: bool, pages: int) -> None: ...

    def ignored(self, name: str, why: str) -> None:
        """A file left out: not a document, or by --include/--exclude."""
        ...

    def finished(self, summary: Summary) -> None: ...


def count_files(sources: Iterable[Source]) -> int:
    """Files behind ``sources`` (a folder's visible files; an archive counts once), for
    a progress total; cheap, nothing is opened."""
    total = 0
    for source in sources:
        path = Path(source) if isinstance(source, str | Path) else None
        if path is not None and path.is_dir():
            total += sum(
                1
                for f in path.rglob("*")
                if f.is_file() and not any(p.startswith(".") for p in f.relative_to(path).parts)
            )
        else:
            total += 1
    return total
