"""``docvlm convert`` run here (not on Ray): the job, and what stops it as one line on
stderr with its ``ExitCode`` (docs/errors.md): USAGE for a bad --passwords file or setting,
BUSY when another run is writing the same --out, CRASHED when the run itself stopped on an
error (a full disk, a model that does not load; a rerun resumes); else the summary's code.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from docvlm.archive.passwords import load_passwords
from docvlm.archive.summary import Observer
from docvlm.errors import DestinationBusyError, DocVLMError, ExitCode, SettingsError

if TYPE_CHECKING:
    from docvlm.archive.output import Output
    from docvlm.archive.pipeline import Options
    from docvlm.document import Document
    from docvlm.settings import Settings

__all__ = ["convert_locally", "crash_line", "redo_warning"]


def crash_line(error: BaseException, destination: str | None) -> str:
    """What stopped a run, in one line (no traceback: a rerun resumes)."""
    where = f"{destination}: " if destination else ""
    full = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
    if full or (isinstance(error, sqlite3.Error) and "full" in str(error)):
        return (
            f"{where}no space left on device ({error}); nothing committed is lost: free "
            "space and run the same command again to resume"
        )
    if isinstance(error, OSError):
        return f"{where}{error.strerror or error} ({error.filename or 'output'}); rerun to resume"
    if isinstance(error, sqlite3.Error):
        return f"{where}the manifest failed ({type(error).__name__}: {error}); rerun to resume"
    return str(error)


def redo_warning(destination: Output) -> str | None:
    """What ``--redo`` does to a destination that holds records, in one line (None when
    its manifest records none): a file starts over, a folder's manifest forgets."""
    from docvlm.archive.manifest import Manifest

    if destination.is_uri or not destination.manifest_file.exists():
        return None
    with Manifest(destination.manifest_file) as manifest:
        counts = manifest.counts()
    earlier = counts.files_done + counts.files_partial + counts.files_failed
    if not earlier:
        return None
    if destination.kind == "folder":
        return (
            f"--redo: {destination} starts over: its manifest forgets its {earlier} earlier "
            "record(s); the folders of files not in this run stay on disk, no longer in the "
            "manifest (docvlm status counts only this run's)"
        )
    return (
        f"--redo: {destination} starts over: its {earlier} earlier record(s) are replaced "
        "by this run's (records of files not in this run are dropped)"
    )


def convert_locally(
    files: Sequence[Path],
    destination: Output | None,
    options: Options,
    settings: Settings,
    checkpoint: str | None,
    *,
    redo: bool,
    max_error_rate: float | None,
    retry_failed: bool,
    passwords: Path | None,
    wait: bool,
    observer: Observer,
    on_document: Callable[[Document], None] | None,
) -> int:
    """Run ``docvlm convert`` here and return its exit code (see the module docstring)."""
    from docvlm.archive.runner import run_job
    from docvlm.client import DocVLM

    if passwords is not None:
        try:
            options = replace(options, passwords=load_passwords(passwords))
        except SettingsError as error:
            sys.stderr.write(f"error: {error}\n")
            return ExitCode.USAGE
    warning = redo_warning(destination) if redo and destination is not None else None
    if warning is not None:
        sys.stderr.write(f"warning: {warning}\n")
    try:
        with DocVLM(settings, checkpoint=checkpoint) as client:
            summary = run_job(
                client.models,
                files,
                options,
                destination,
                redo=redo,
                max_error_rate=max_error_rate,
                observer=observer,
                on_document=on_document,
                retry_failed=retry_failed,
                wait=wait,
            )
    except (DestinationBusyError, SettingsError) as error:
        sys.stderr.write(f"error: {error}\n")
        return ExitCode.of(error)
    except (DocVLMError, OSError, sqlite3.Error) as error:
        where = None if destination is None else str(destination)
        sys.stderr.write(f"error: {crash_line(error, where)}\n")
        return ExitCode.CRASHED
    return summary.exit_code
