"""``POST /v1/convert``: admission, the upload streamed to disk, the conversion, and its end.

In order: a place in the queue is taken before a byte of the body is read (429 at once
when there is none, 503 while the server stops); the body is streamed to a file (413
past ``--max-upload-mb``); the conversion runs in a worker thread. The request has a
time budget (``--request-timeout``, upload included; 504 past it), and the conversion is
cancelled when the budget runs out, when the client disconnects, or when the server
shuts down (cooperatively: see ``docvlm.server.cancel``).
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Future
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from docvlm.document import Document
from docvlm.errors import CheckpointNotConfiguredError, DocVLMError
from docvlm.reading.options import DPI_RANGE, MAX_NEW_TOKENS_RANGE, form_schema
from docvlm.reading.pdf import ENCRYPTED
from docvlm.server.archive import Archive, UploadArchive
from docvlm.server.cancel import ConversionCancelled
from docvlm.server.conversions import (
    ConversionJob,
    QueueFullError,
    ServiceClosingError,
)
from docvlm.server.state import Given
from docvlm.server.uploads import NoFileError, Upload, UploadTooLarge, receive_upload
from docvlm.tasks import TASKS, TaskName

__all__ = ["CONVERT_FORM", "router"]

#: What an encrypted upload is told (the CLI's hint names --password).
ENCRYPTED_UPLOAD = "it is encrypted: give its password (the `password` form field)"

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
                        **form_schema(),  # pages, password, dpi, ...: as the CLI's options
                    },
                }
            }
        },
    }
}


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
        "password": form.get("password") or None,
        "dpi": number("dpi", *DPI_RANGE),
        "max_new_tokens": number("max_new_tokens", *MAX_NEW_TOKENS_RANGE),
        "question": text("question"),
        # on unless the form turns it off (a missing field keeps the default)
        "orient": str(form.get("orient", "true")).lower() not in ("0", "false", "off", "no"),
    }


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"the upload is over the limit of {limit:,} bytes"}, status_code=413
    )


def _queue_full(error: QueueFullError) -> JSONResponse:
    return JSONResponse(
        {"detail": str(error)}, status_code=429, headers={"Retry-After": str(error.retry_after)}
    )


async def _client_left(request: Request) -> None:
    """Return once the client has disconnected (the body was read before)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


router = APIRouter()


@router.post("/v1/convert", response_model=Document, openapi_extra=CONVERT_FORM)
async def convert(request: Request, service: Given) -> Response:
    """Convert one uploaded PDF or image; answers the Document (422 when the file
    cannot be read, with the cause; 413 over the size limit; 429 when busy; 504 past
    the time budget; 503 while the server stops)."""
    converter, archive, uploads = service.converter, service.archive, service.uploads
    assert converter is not None and uploads is not None  # included only with a converter
    limit, timeout = service.max_upload_bytes, service.request_timeout
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        converter.admit()  # before reading the body: a full queue costs nothing
    except QueueFullError as error:
        return _queue_full(error)
    except ServiceClosingError as error:
        return JSONResponse({"detail": str(error)}, status_code=503)
    upload: Upload | None = None
    future: Future[Document] | None = None
    kept = False
    try:
        try:
            async with asyncio.timeout_at(deadline):
                upload = await receive_upload(request, uploads, limit)
            options = _options(upload.form)
            converter.check(options["tasks"], options["question"])
        except BaseException:
            converter.release()
            raise
        job = ConversionJob(name=upload.name, data=upload.path, sha256=upload.sha256, **options)
        future = converter.submit(job, admitted=True)
        document = await _finish(request, job, asyncio.wrap_future(future), deadline)
        if document is None:  # the client has gone: nobody reads an answer
            return Response(status_code=499)
        kept = isinstance(archive, UploadArchive)
        return _answer(document, upload, archive, options["password"])
    except UploadTooLarge:
        return _too_large(limit)
    except TimeoutError:
        detail = (
            f"the request took longer than its budget of {timeout:g} s "
            "(--request-timeout); its conversion was cancelled"
        )
        return JSONResponse({"detail": detail}, status_code=504)
    except (NoFileError, ValueError, CheckpointNotConfiguredError) as error:
        raise HTTPException(422, str(error)) from None
    except (ConversionCancelled, ServiceClosingError) as error:
        return JSONResponse({"detail": f"{error} (the server is stopping)"}, status_code=503)
    except asyncio.CancelledError:
        # past the grace period on shutdown uvicorn cancels the request, which would answer
        # 500; its conversion was cancelled with the others, and it says so (503)
        if not converter.closing:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        detail = "the conversion was cancelled (the server is stopping)"
        return JSONResponse({"detail": detail}, status_code=503)
    except DocVLMError as error:  # the model could not be loaded
        raise HTTPException(503, str(error)) from None
    finally:
        if upload is not None and not kept:
            if future is not None and not future.done():  # deleted once it stops
                future.add_done_callback(upload.discard_when_done)
            else:
                upload.discard()


def _answer(
    document: Document, upload: Upload, archive: Archive, password: str | None
) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(archive, UploadArchive):
        number = archive.add(document, upload.path, password)
        headers["Content-Location"] = f"/v1/documents/{number}"
    if document.error == ENCRYPTED:
        document = document.model_copy(update={"error": ENCRYPTED_UPLOAD})
    payload = document.model_dump(mode="json")
    if document.status == "failure":
        detail = f"{document.source}: {document.error}"
        return JSONResponse(
            {"detail": detail, "document": payload}, status_code=422, headers=headers
        )
    return JSONResponse(payload, headers=headers)


async def _finish(
    request: Request, job: ConversionJob, conversion: asyncio.Future[Document], deadline: float
) -> Document | None:
    """The Document, or None when the client disconnected first; past ``deadline``
    raises ``TimeoutError``. Whatever ends the wait early cancels the conversion."""
    conversion.add_done_callback(_retrieve)  # an abandoned one's error is not "unretrieved"
    left: asyncio.Future[Any] = asyncio.ensure_future(_client_left(request))
    waiting: set[asyncio.Future[Any]] = {conversion, left}
    try:
        async with asyncio.timeout_at(deadline):
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the budget ran out, or this task was cancelled (shutdown)
        job.cancel.set()
        raise
    finally:
        left.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await left
    if conversion not in done:
        job.cancel.set()
        return None
    return conversion.result()


def _retrieve(future: asyncio.Future[Document]) -> None:
    if not future.cancelled():
        future.exception()
