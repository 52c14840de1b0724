"""Moved to ``docvlm.archive.parquet``; this path re-exports it for one release (0.2) and warns."""

import warnings

from docvlm.archive.parquet import *  # noqa: F403
from docvlm.archive.parquet import __all__ as __all__

warnings.warn(
    "docvlm.parquet moved to docvlm.archive.parquet; the old path goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)
