"""The HTTP service and the viewer's API, as one FastAPI app.

::

    GET  /                                       the viewer (static files, no CDN)
    GET  /healthz                                liveness, queue depth
    GET  /v1/info                                mode, tasks, limits (the viewer reads it)
    GET  /v1/schema                              JSON Schema of a Document
    POST /v1/convert                             multipart: file + options -> Document JSON
    GET  /v1/documents                           the archive, a window at a time
    GET  /v1/documents/{id}                      one Document
    GET  /v1/documents/{id}/pages/{n}/image      the page, re-rendered (PNG)
    GET  /v1/documents/{id}/pages/{n}/results/{i}/drawing   molecule or score as SVG
    GET  /v1/suspects                            suspect results across the archive
    GET  /v1/review                              the review queue (docvlm review --json)
    GET  /v1/editing, /v1/documents/{id}/pages/{n}/version; POST /v1/corrections,
         /v1/preview                             the editors (docvlm.server.corrections)

``/v1/convert`` exists only when the app is given a ``Converter`` (``docvlm serve``);
``docvlm view`` serves the same viewer over an output on disk.

One router per resource, each in its own module: ``health`` (healthz, info, schema),
``documents`` (the records), ``pages`` (page images and drawings), ``suspects``, ``review``
and ``convert``; each endpoint is given the app's ``Service`` (``docvlm.server.state``).
``create_app`` puts them together.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import docvlm
from docvlm.server import convert, corrections, documents, health, pages, review, suspects
from docvlm.server.archive import Archive
from docvlm.server.conversions import Converter
from docvlm.server.state import Service
from docvlm.server.uploads import remove_folder

__all__ = ["VIEWER", "create_app"]

VIEWER = Path(__file__).resolve().parent.parent / "viewer"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

viewer = APIRouter()


@viewer.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(VIEWER / "index.html", headers={"Cache-Control": "no-cache"})


def create_app(
    archive: Archive,
    *,
    converter: Converter | None = None,
    max_upload_bytes: int = 64 << 20,
    request_timeout: float = 300.0,
    editing: corrections.Editing | None = None,
) -> FastAPI:
    """The app: the viewer over ``archive``, and with ``converter`` the conversion API.

    Converted documents are added to ``archive`` when it is an ``UploadArchive``. Uploads
    are streamed to a temporary folder; a conversion is cancelled when its client leaves
    or ``request_timeout`` seconds (upload included) have passed. With ``editing``,
    corrections may be saved (``docvlm.server.corrections``).
    """
    uploads = Path(tempfile.mkdtemp(prefix="docvlm-uploads-")) if converter else None
    service = Service(archive, converter, uploads, max_upload_bytes, request_timeout)
    app = FastAPI(
        title="docvlm",
        version=docvlm.__version__,
        summary="Scanned documents to typed data with PaliGemma 2",
        lifespan=_lifespan(service),
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; /openapi.json is served
        redoc_url=None,
    )
    app.state.service = service
    app.state.archive = archive
    app.state.converter = converter
    app.state.editing = editing
    app.add_middleware(_SecurityHeaders)
    app.include_router(viewer)
    app.mount("/static", StaticFiles(directory=VIEWER), name="static")
    for resource in (health, documents, pages, suspects, review, corrections):
        app.include_router(resource.router)
    if converter is not None:
        app.include_router(convert.router)
    return app


def _lifespan(service: Service) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """On shutdown: the converter closed (its conversions cancelled), the uploads removed."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if service.converter is not None:
                await asyncio.to_thread(service.converter.close)
            if service.uploads is not None:
                remove_folder(service.uploads)

    return lifespan


class _SecurityHeaders:
    """CSP, nosniff and no-referrer on every answer; a plain ASGI middleware (not
    ``BaseHTTPMiddleware``), so the endpoint still sees its client disconnect."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", PAGE_CSP.encode()))
                headers = [h for h in headers if h[0].lower() != b"x-content-type-options"]
                headers += [(b"x-content-type-options", b"nosniff")]
                headers += [(b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
