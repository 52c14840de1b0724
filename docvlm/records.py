"""Moved to ``docvlm.archive.records``; this path re-exports it for one release (0.2) and warns."""

import warnings

from docvlm.archive.records import *  # noqa: F403
from docvlm.archive.records import __all__ as __all__

warnings.warn(
    "docvlm.records moved to docvlm.archive.records; the old path goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)
