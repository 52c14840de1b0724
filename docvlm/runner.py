"""Moved to ``docvlm.archive.runner``; this path re-exports it for one release (0.2) and warns."""

import warnings

from docvlm.archive.runner import *  # noqa: F403
from docvlm.archive.runner import __all__ as __all__

warnings.warn(
    "docvlm.runner moved to docvlm.archive.runner; the old path goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)
