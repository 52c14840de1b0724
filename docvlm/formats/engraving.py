"""A verovio toolkit set up to work in any thread (shared by the viewer's score drawing and
the synthetic music data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docvlm.errors import MissingDependencyError

__all__ = ["verovio_toolkit"]


def verovio_toolkit(extra: str) -> Any:
    """A new ``verovio.toolkit`` with its log off and its resource path set; ``extra``
    names the docvlm extra that installs verovio, for the error when it is missing."""
    try:
        import verovio
    except ImportError as error:
        raise MissingDependencyError(
            f"engraving scores needs verovio: pip install 'docvlm[{extra}]'"
        ) from error
    verovio.enableLog(verovio.LOG_OFF)
    toolkit = verovio.toolkit()
    # verovio's default resource path is per thread and wrong outside the thread that
    # first made a toolkit: without this, fonts are missing and nothing loads
    toolkit.setResourcePath(str(Path(verovio.__file__).parent / "data"))
    return toolkit
