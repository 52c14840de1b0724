"""Moved to ``docvlm.archive.pipeline``; this path re-exports it for one release (0.2) and warns."""

import warnings

from docvlm.archive.pipeline import *  # noqa: F403
from docvlm.archive.pipeline import __all__ as __all__

warnings.warn(
    "docvlm.pipeline moved to docvlm.archive.pipeline; the old path goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)
