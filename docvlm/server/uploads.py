"""Receiving an upload: the multipart body streamed to a file on disk, never held whole.

Starlette's form parser spools each file part (in memory up to 1 MiB, then in a
temporary file); the body is cut off once it passes the limit (``UploadTooLarge``), and
the file part is then copied in chunks to a named file in the server's upload folder,
hashed on the way, which the conversion reads by path.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.types import Message, Receive

__all__ = ["FORM_SLACK", "Upload", "UploadTooLarge", "receive_upload"]

#: Bytes a multipart body may carry besides the file (boundaries, headers, option fields).
FORM_SLACK = 64 * 1024
_CHUNK = 1 << 20


class UploadTooLarge(Exception):
    """The body is over the limit (declared, or counted while it streams in)."""


class NoFileError(ValueError):
    """The form has no ``file`` part."""


@dataclass(frozen=True)
class Upload:
    """The uploaded file on disk, its name and hash, and the form's other fields."""

    path: Path
    name: str
    size: int
    sha256: str
    form: FormData

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def discard_when_done(self, _: object) -> None:
        """``discard`` as a future's done-callback: an abandoned conversion keeps reading
        its file until it stops at its next check."""
        self.discard()


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive`` that stops reading a request body once it is over ``limit`` bytes."""
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise UploadTooLarge
        return message

    return capped


def _copy(source: BinaryIO, folder: Path, limit: int) -> tuple[Path, int, str]:
    """``source`` copied in chunks to a new file in ``folder``: (path, size, sha256)."""
    digest = hashlib.sha256()
    size = 0
    handle, name = tempfile.mkstemp(dir=folder, prefix="upload-")
    path = Path(name)
    try:
        source.seek(0)
        with os.fdopen(handle, "wb") as target:
            while chunk := source.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge
                digest.update(chunk)
                target.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size, digest.hexdigest()


async def receive_upload(request: Request, folder: Path, limit: int) -> Upload:
    """Read the multipart form of ``request``, its ``file`` part into ``folder``.

    Raises ``UploadTooLarge`` past ``limit`` bytes (the file) and ``NoFileError``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_SLACK:
        raise UploadTooLarge
    body = Request(request.scope, _capped(request.receive, limit + FORM_SLACK))
    form = await body.form(max_files=1, max_fields=64)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise NoFileError("the form needs a `file` part holding the document")
        path, size, sha256 = await asyncio.to_thread(_copy, upload.file, folder, limit)
        fields = FormData([(k, v) for k, v in form.multi_items() if isinstance(v, str)])
        return Upload(path, upload.filename or "<upload>", size, sha256, fields)
    finally:
        await form.close()


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
