"""``docvlm serve`` and ``docvlm view``: an HTTP service that keeps the models loaded, and a
viewer that shows each page with its boxes beside what was read.

Needs the ``server`` extra (``pip install 'docvlm[server]'``): FastAPI, uvicorn,
python-multipart and verovio. ``import docvlm`` never imports this package, and this
package imports FastAPI only when one of its names is first used::

    from docvlm.server import service_app, viewer_app
    app = service_app(Settings(), workers=2)   # POST /v1/convert, the viewer at /
    app = viewer_app(Path("out.jsonl"))        # the viewer over a conversion output

May import: the client, the archive machinery, the reading path, engines, formats and
parsers. Only its entry point (``docvlm.cli.serve``) imports it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from docvlm.errors import MissingDependencyError

if TYPE_CHECKING:
    from docvlm.server.app import create_app
    from docvlm.server.archive import Archive, UploadArchive
    from docvlm.server.batching import SharedEngine, SharedEngines
    from docvlm.server.conversions import ConversionJob, Converter, QueueFullError
    from docvlm.server.outputs import FileArchive, OutputError
    from docvlm.server.run import run, service_app, viewer_app

__all__ = [
    "Archive",
    "ConversionJob",
    "Converter",
    "FileArchive",
    "OutputError",
    "QueueFullError",
    "SharedEngine",
    "SharedEngines",
    "UploadArchive",
    "create_app",
    "run",
    "service_app",
    "viewer_app",
]

_HOMES = {
    "create_app": "app",
    "Archive": "archive",
    "UploadArchive": "archive",
    "SharedEngine": "batching",
    "SharedEngines": "batching",
    "ConversionJob": "conversions",
    "Converter": "conversions",
    "QueueFullError": "conversions",
    "FileArchive": "outputs",
    "OutputError": "outputs",
    "run": "run",
    "service_app": "run",
    "viewer_app": "run",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'docvlm.server' has no attribute {name!r}")
    try:
        module = importlib.import_module(f"docvlm.server.{_HOMES[name]}")
    except ImportError as error:
        raise MissingDependencyError(
            "docvlm serve and view need the server extra: pip install 'docvlm[server]'"
        ) from error
    return getattr(module, name)
