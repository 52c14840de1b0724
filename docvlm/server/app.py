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

``/v1/convert`` exists only when the app is given a ``Converter`` (``docvlm serve``);
``docvlm view`` serves the same viewer over an output on disk.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import docvlm
from docvlm.document import Document, json_schema
from docvlm.results import MoleculeResult, MusicResult
from docvlm.server.archive import Archive, PageImageError, Suspect
from docvlm.server.conversions import Converter
from docvlm.server.convert import add_convert
from docvlm.server.drawings import DrawingError, molecule_svg, music_svg
from docvlm.server.uploads import remove_folder
from docvlm.tasks import TASKS

__all__ = ["VIEWER", "create_app"]

VIEWER = Path(__file__).resolve().parent.parent / "viewer"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
DRAWING_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def create_app(
    archive: Archive,
    *,
    converter: Converter | None = None,
    max_upload_bytes: int = 64 << 20,
    request_timeout: float = 300.0,
) -> FastAPI:
    """The app: the viewer over ``archive``, and with ``converter`` the conversion API.

    Converted documents are added to ``archive`` when it is an ``UploadArchive``. Uploads
    are streamed to a temporary folder; a conversion is cancelled when its client leaves
    or ``request_timeout`` seconds (upload included) have passed.
    """
    uploads = Path(tempfile.mkdtemp(prefix="docvlm-uploads-")) if converter else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if converter is not None:
                await asyncio.to_thread(converter.close)
            if uploads is not None:
                remove_folder(uploads)

    app = FastAPI(
        title="docvlm",
        version=docvlm.__version__,
        summary="Scanned documents to typed data with PaliGemma 2",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; /openapi.json is served
        redoc_url=None,
    )
    app.state.archive = archive
    app.state.converter = converter

    app.add_middleware(_SecurityHeaders)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(VIEWER / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=VIEWER), name="static")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness, and how many conversions are running or waiting."""
        return {
            "status": "ok",
            "mode": "serve" if converter else "view",
            "admitted": converter.admitted if converter else 0,
            "engines": sorted(converter.engines.loaded) if converter else [],
        }

    @app.get("/v1/info")
    def info() -> dict[str, Any]:
        """What the viewer needs to know about this server."""
        return {
            "mode": "serve" if converter else "view",
            "version": docvlm.__version__,
            "tasks": list(TASKS),
            "max_upload_bytes": max_upload_bytes,
            "request_timeout": request_timeout if converter else None,
        }

    @app.get("/v1/schema")
    def schema() -> dict[str, Any]:
        """JSON Schema of the Document that /v1/convert answers with."""
        return json_schema("document")

    @app.get("/v1/documents")
    def documents(
        offset: int = Query(0, ge=0), limit: int = Query(200, ge=1, le=5000)
    ) -> dict[str, Any]:
        """The archive's documents, ``limit`` from ``offset``, with their suspect counts."""
        total, window = archive.summaries(offset, limit)
        return {"total": total, "documents": [s.model_dump() for s in window]}

    @app.get("/v1/documents/{number}", response_model=Document)
    def document(number: int) -> Document:
        return _get(archive, number)

    @app.get(
        "/v1/documents/{number}/pages/{page}/image",
        responses={200: {"content": {"image/png": {}}}},
        response_class=Response,
    )
    async def page_image(number: int, page: int) -> Response:
        """The page as the model saw it, re-rendered from the source (PNG)."""
        _get(archive, number)
        try:
            png = await asyncio.to_thread(archive.page_png, number, page)
        except (KeyError, PageImageError):  # one answer, whatever the cause (logged)
            raise HTTPException(404, "no such page image") from None
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=600"})

    @app.get(
        "/v1/documents/{number}/pages/{page}/results/{index}/drawing",
        responses={200: {"content": {"image/svg+xml": {}}}},
        response_class=Response,
    )
    async def drawing(number: int, page: int, index: int) -> Response:
        """A molecule drawn by RDKit or a score engraved by verovio, as SVG."""
        found = [p for p in _get(archive, number).pages if p.number == page]
        if not found or not 0 <= index < len(found[0].results):
            raise HTTPException(404, f"document {number} has no result {index} on page {page}")
        result = found[0].results[index]
        try:
            if isinstance(result, MoleculeResult) and result.molecule is not None:
                svg = await asyncio.to_thread(molecule_svg, result.molecule)
            elif isinstance(result, MusicResult) and result.score is not None:
                svg = await asyncio.to_thread(music_svg, result.score)
            else:
                raise DrawingError(f"a {result.task} result without a molecule or score")
        except DrawingError as error:
            raise HTTPException(404, str(error)) from None
        return Response(
            svg,
            media_type="image/svg+xml",
            headers={"Content-Security-Policy": DRAWING_CSP, "Cache-Control": "max-age=600"},
        )

    @app.get("/v1/suspects", response_model=list[Suspect])
    def suspects(
        min_confidence: float | None = Query(None, ge=0, le=1),
        limit: int = Query(1000, ge=1, le=100_000),
    ) -> list[Suspect]:
        """Results that did not parse, were cut off or stopped repeating; pages and
        documents that failed; with ``min_confidence``, results read with less."""
        return archive.suspects(min_confidence, limit)

    if converter is not None and uploads is not None:
        add_convert(app, converter, archive, uploads, max_upload_bytes, request_timeout)
    return app


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


def _get(archive: Archive, number: int) -> Document:
    try:
        return archive.document(number)
    except KeyError:
        raise HTTPException(404, f"no document {number} (it may have been dropped)") from None
