"""Moved to ``docvlm.reading.render``; this path re-exports it for one release (0.2) and warns."""

import warnings

from docvlm.reading.render import *  # noqa: F403
from docvlm.reading.render import __all__ as __all__

warnings.warn(
    "docvlm.render moved to docvlm.reading.render; the old path goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)
