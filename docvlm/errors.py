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
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CheckpointNotConfiguredError",
    "CheckpointUnavailableError",
    "CorruptInputError",
    "DestinationBusyError",
    "DocVLMError",
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
