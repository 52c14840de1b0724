"""Moved to ``docvlm.reading.regions``; this path re-exports it for one release (0.2) and warns."""

import warnings

from docvlm.reading.regions import *  # noqa: F403
from docvlm.reading.regions import __all__ as __all__

warnings.warn(
    "docvlm.regions moved to docvlm.reading.regions; the old path goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)
