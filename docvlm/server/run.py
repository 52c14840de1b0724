"""Building the two apps (the service, the viewer over an output) and running them."""

from __future__ import annotations

import asyncio
import socket
import webbrowser
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI

from docvlm.archive.output import Output
from docvlm.engines import EngineFactory, load_engine
from docvlm.server.app import create_app
from docvlm.server.archive import UploadArchive
from docvlm.server.conversions import Converter
from docvlm.server.corrections import EditedArchive, Editing
from docvlm.server.outputs import FileArchive
from docvlm.settings import Settings

__all__ = ["GRACEFUL_SECONDS", "LOCALHOST", "run", "service_app", "viewer_app"]

LOCALHOST = "127.0.0.1"
#: After SIGTERM (or Ctrl-C), how long answers in flight may still finish; then their
#: requests are cancelled, which cancels their conversions, and the process exits.
GRACEFUL_SECONDS = 2


def service_app(
    settings: Settings,
    *,
    checkpoint: str | None = None,
    engine_factory: EngineFactory = load_engine,
    workers: int = 2,
    queue_limit: int = 8,
    max_upload_bytes: int = 64 << 20,
    keep: int = 32,
    window: float = 0.005,
    request_timeout: float = 300.0,
) -> FastAPI:
    """The conversion service with the viewer: models load on the first request and stay.

    ``workers`` conversions run at once (their crops batched together, up to
    ``settings.batch_size`` per engine call); ``queue_limit`` more wait, then 429.
    The last ``keep`` documents stay viewable, with up to 512 MiB of their uploads (at
    least the newest one, on disk) kept to draw their pages. A request may take
    ``request_timeout`` seconds, its upload included; then its conversion is cancelled.
    """
    converter = Converter(
        settings,
        checkpoint=checkpoint,
        engine_factory=engine_factory,
        workers=workers,
        queue_limit=queue_limit,
        window=window,
    )
    archive = UploadArchive(settings, keep=keep, max_bytes=max(max_upload_bytes, 512 << 20))
    return create_app(
        archive,
        converter=converter,
        max_upload_bytes=max_upload_bytes,
        request_timeout=request_timeout,
    )


def viewer_app(
    output: Output | Path,
    settings: Settings | None = None,
    *,
    root: Path | None = None,
    edit: bool = False,
    token: str | None = None,
) -> FastAPI:
    """The viewer over a conversion output (JSONL, Parquet or an output folder); pages
    are drawn only from source files under ``root`` or the output's folder. With
    ``edit``, its editors save corrections into the output (with ``token``, only requests
    that carry it). ``output``: an ``Output``, or the path of one (``Output.existing``:
    ``OutputError`` when it is not an output)."""
    found = output if isinstance(output, Output) else Output.existing(output)
    archive = FileArchive(found, settings or Settings(), root=root)
    # read with the corrections and review marks also when not editing: the same queue
    editing = Editing(found.corrections(root=root), token=token or None)
    return create_app(EditedArchive(archive, editing), editing=editing if edit else None)


def run(
    app: FastAPI, *, host: str = LOCALHOST, port: int = 8000, open_browser: bool = False
) -> None:
    """Serve ``app`` with uvicorn until interrupted (SIGINT or SIGTERM): it then takes no
    new connections, gives answers in flight ``GRACEFUL_SECONDS``, cancels the
    conversions still running and exits."""
    if open_browser:
        webbrowser.open(f"http://{host}:{port}/")
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", timeout_graceful_shutdown=GRACEFUL_SECONDS
    )
    _Server(config, getattr(app.state, "converter", None)).run()


class _Server(uvicorn.Server):
    """uvicorn's server, which on SIGINT/SIGTERM also stops the converter at once, so the
    requests in flight answer 503 within the grace period instead of being cut off."""

    def __init__(self, config: uvicorn.Config, converter: Converter | None) -> None:
        super().__init__(config)
        self._converter = converter
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._converter is not None and self._loop is not None:
            # a signal handler must not take the converter's lock: the loop's thread does
            self._loop.call_soon_threadsafe(self._converter.stop)
        super().handle_exit(sig, frame)
