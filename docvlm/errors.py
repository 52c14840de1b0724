"""The exceptions docvlm raises. Every one derives from ``DocVLMError``.

Single calls raise; batch work records the same errors as data on each page
(``Page.status`` and ``Page.error``) and goes on. Model output that does not parse is never
an exception: the result carries ``status="parse_error"`` and the parser's reason.

::

    DocVLMError
    ├── InputError                   a source that cannot be read (names file and page)
    │   ├── UnsupportedInputError      not a PDF or image (type sniffed from content)
    │   ├── PasswordRequiredError      encrypted PDF without (or with a wrong) password
    │   ├── CorruptInputError          a damaged file the renderer refuses
    │   ├── PageRangeError             a page number the document does not have
    │   ├── InputLimitError            over the pixel, page or size limits
    │   └── SourceChangedError         the original changed since it was converted (SHA-256)
    ├── CheckpointError              the model cannot be loaded
    │   ├── CheckpointNotConfiguredError  no checkpoint set for a task without a public one
    │   └── CheckpointUnavailableError    missing directory, offline, gated or not found
    ├── MissingDependencyError       an optional extra is not installed
    ├── SettingsError                a setting or DOCVLM_* variable has a bad value
    └── DestinationBusyError         another run is writing into the same --out

``ExitCode`` is the one table of the ``docvlm`` commands' exit statuses (docs/errors.md
prints it); ``ExitCode.of(error)`` is the status an error ends a command with.
"""

from __future__ import annotations

import sqlite3
from enum import IntEnum

__all__ = [
    "CheckpointError",
    "CheckpointNotConfiguredError",
    "CheckpointUnavailableError",
    "CorruptInputError",
    "DestinationBusyError",
    "DocVLMError",
    "ExitCode",
    "InputError",
    "InputLimitError",
    "MissingDependencyError",
    "PageRangeError",
    "PasswordRequiredError",
    "SettingsError",
    "SourceChangedError",
    "UnsupportedInputError",
]


class DocVLMError(Exception):
    """Base of every docvlm error; ``str(error)`` is one line naming the cause."""


class InputError(DocVLMError):
    """A source that cannot be read. ``source`` and ``page`` (1-based) say where."""

    def __init__(self, message: str, *, source: str, page: int | None = None) -> None:
        self.source = source
        self.page = page
        self.reason = message
        where = f"{source}, page {page}" if page is not None else source
        super().__init__(f"{where}: {message}")


class UnsupportedInputError(InputError):
    """The content is neither a PDF nor an image docvlm reads."""


class PasswordRequiredError(InputError):
    """The PDF is encrypted and no password, or a wrong one, was given."""


class CorruptInputError(InputError):
    """The file is damaged beyond what the renderer repairs."""


class PageRangeError(InputError):
    """A requested page is outside the document."""


class InputLimitError(InputError):
    """The input is over a configured limit (pixels per page, pages, bytes)."""


class SourceChangedError(InputError):
    """The original file's SHA-256 is not the one recorded when it was converted (a
    searchable PDF would put the text over other pages)."""


class CheckpointError(DocVLMError):
    """The model for a task cannot be loaded."""


class CheckpointNotConfiguredError(CheckpointError):
    """The task has no public checkpoint and none was configured."""


class CheckpointUnavailableError(CheckpointError):
    """The checkpoint directory is missing or invalid, or the hub cannot provide it."""


class MissingDependencyError(DocVLMError, ImportError):
    """An optional dependency is missing; the message gives the pip command."""


class SettingsError(DocVLMError, ValueError):
    """A setting has a bad value; the message names it (``DOCVLM_DPI`` or ``dpi=``)."""


class DestinationBusyError(DocVLMError):
    """Another run holds the lock of the destination (``docvlm.archive.lock``)."""


class ExitCode(IntEnum):
    """The exit status of every ``docvlm`` command: 1 is about the inputs, 2 about the
    command, 5 about the machine or the model; ``meaning`` is the row of docs/errors.md."""

    meaning: str

    def __new__(cls, value: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    OK = 0, "everything asked for was done (`convert`: every file of `--out` is converted)"
    FAILED = (
        1,
        "some inputs could not be read, each named with its cause on stderr (`convert`: "
        "files failed or converted in part, in this run or recorded by an earlier run into "
        "the same `--out`; `--retry-failed` converts those again); a check that did not pass",
    )
    USAGE = (
        2,
        "the command cannot start: an unknown option or bad value, a bad `DOCVLM_*` "
        "setting, an unreadable `--passwords` file or corrections file (`correct`), a "
        "path that does not exist; nothing was read",
    )
    STOPPED = 3, "`convert` stopped by `--max-error-rate` (the rate is in the summary)"
    BUSY = 4, "another run is writing the same `--out` (named on stderr); `--wait` waits"
    CRASHED = (
        5,
        "the run itself could not go on: the model does not load (checkpoint missing, "
        "gated or offline, extra not installed), a full disk, an unwritable destination; "
        "nothing committed is lost and the same command run again resumes",
    )
    INTERRUPTED = 130, "interrupted (Ctrl-C); `finetune --resume` continues from a checkpoint"

    @classmethod
    def of(cls, error: BaseException) -> ExitCode:
        """The status a command ends with when ``error`` stops it."""
        if isinstance(error, SettingsError):
            return cls.USAGE
        if isinstance(error, DestinationBusyError):
            return cls.BUSY
        if isinstance(error, CheckpointError | MissingDependencyError | OSError | sqlite3.Error):
            return cls.CRASHED
        return cls.FAILED
