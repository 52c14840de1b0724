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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.types import Message, Receive

import docvlm
from docvlm.document import Document, json_schema
from docvlm.errors import CheckpointNotConfiguredError, DocVLMError
from docvlm.results import MoleculeResult, MusicResult
from docvlm.server.archive import Archive, PageImageError, Suspect, UploadArchive
from docvlm.server.conversions import ConversionJob, Converter, QueueFullError
from docvlm.server.drawings import DrawingError, molecule_svg, music_svg
from docvlm.tasks import TASKS, TaskName

__all__ = ["VIEWER", "create_app"]

VIEWER = Path(__file__).resolve().parent.parent / "viewer"
#: Bytes a multipart body may carry besides the file (boundaries, headers, option fields).
FORM_SLACK = 64 * 1024
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
DRAWING_CSP = "default-src 'none'; style-src 'unsafe-inline'"
CONVERT_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "tasks": {
                            "type": "array",
                            "items": {"type": "string", "enum": list(TASKS)},
                            "description": "repeatable, or comma-separated (default: text)",
                        },
                        "layout": {"type": "boolean"},
                        "pages": {"type": "string", "examples": ["1-3,7"]},
                        "password": {"type": "string"},
                        "dpi": {"type": "integer", "minimum": 36, "maximum": 1200},
                        "max_new_tokens": {"type": "integer", "minimum": 1},
                        "question": {"type": "string"},
                    },
                }
            }
        },
    }
}


class _TooLarge(Exception):
    pass


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive`` that stops reading a request body once it is over ``limit`` bytes."""
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
        return message

    return capped


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"the upload is over the limit of {limit:,} bytes"}, status_code=413
    )


def _options(form: Any) -> dict[str, Any]:
    """``DocVLM.convert`` options from the form fields; ``ValueError`` names a bad one."""
    names = [n.strip() for v in form.getlist("tasks") for n in str(v).split(",") if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r}; use {', '.join(TASKS)}")
    tasks: tuple[TaskName, ...] = tuple(t for t in TASKS if t in names) or ("text",)

    def number(name: str, low: int, high: int) -> int | None:
        value = form.get(name)
        if value in (None, ""):
            return None
        try:
            parsed = int(str(value))
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {str(value)[:40]!r}") from None
        if not low <= parsed <= high:
            raise ValueError(f"{name} must be between {low} and {high}")
        return parsed

    def text(name: str) -> str | None:
        value = form.get(name)
        return str(value) if value not in (None, "") else None

    return {
        "tasks": tasks,
        "layout": str(form.get("layout", "")).lower() in ("1", "true", "on", "yes"),
        "pages": text("pages"),
        "password": text("password"),
        "dpi": number("dpi", 36, 1200),
        "max_new_tokens": number("max_new_tokens", 1, 65536),
        "question": text("question"),
    }


def create_app(
    archive: Archive,
    *,
    converter: Converter | None = None,
    max_upload_bytes: int = 64 << 20,
) -> FastAPI:
    """The app: the viewer over ``archive``, and with ``converter`` the conversion API.

    Converted documents are added to ``archive`` when it is an ``UploadArchive``.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if converter is not None:
            await asyncio.to_thread(converter.close)

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

    @app.middleware("http")
    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

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
        except KeyError:
            raise HTTPException(404, f"document {number} has no page {page}") from None
        except PageImageError as error:
            raise HTTPException(404, str(error)) from None
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

    if converter is not None:
        _add_convert(app, converter, archive, max_upload_bytes)
    return app


def _get(archive: Archive, number: int) -> Document:
    try:
        return archive.document(number)
    except KeyError:
        raise HTTPException(404, f"no document {number} (it may have been dropped)") from None


def _add_convert(app: FastAPI, converter: Converter, archive: Archive, limit: int) -> None:
    @app.post("/v1/convert", response_model=Document, openapi_extra=CONVERT_FORM)
    async def convert(request: Request) -> Response:
        """Convert one uploaded PDF or image; answers the Document (422 when the file
        cannot be read, with the cause; 413 over the size limit; 429 when busy)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + FORM_SLACK:
            return _too_large(limit)
        body = Request(request.scope, _capped(request.receive, limit + FORM_SLACK))
        try:
            form = await body.form(max_files=1, max_fields=64)
        except _TooLarge:
            return _too_large(limit)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "the form needs a `file` part holding the document")
        data = await upload.read()
        await form.close()
        if len(data) > limit:
            return _too_large(limit)
        try:
            options = _options(form)
            converter.check(options["tasks"], options["question"])
        except (ValueError, CheckpointNotConfiguredError) as error:
            raise HTTPException(422, str(error)) from None
        name = upload.filename or "<upload>"
        try:
            future = converter.submit(ConversionJob(name=name, data=data, **options))
        except QueueFullError as error:
            return JSONResponse(
                {"detail": str(error)},
                status_code=429,
                headers={"Retry-After": str(error.retry_after)},
            )
        try:
            document = await asyncio.wrap_future(future)
        except DocVLMError as error:  # the model could not be loaded
            raise HTTPException(503, str(error)) from None
        headers: dict[str, str] = {}
        if isinstance(archive, UploadArchive):
            number = archive.add(document, data, options["password"])
            headers["Content-Location"] = f"/v1/documents/{number}"
        payload = document.model_dump(mode="json")
        if document.status == "failure":
            detail = f"{document.source}: {document.error}"
            return JSONResponse(
                {"detail": detail, "document": payload}, status_code=422, headers=headers
            )
        return JSONResponse(payload, headers=headers)
