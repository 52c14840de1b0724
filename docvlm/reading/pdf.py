"""PDF pages through pypdfium2, in this process or in a worker process with a timeout.

A malformed page can make a renderer spin; with a timeout set, rendering happens in a
child process that is killed and restarted when one page takes too long, so the page is
abandoned (and reported) and the job goes on.

The child is its own program (``python -m docvlm.reading.render_worker``) talking over a socket
pair, not a ``multiprocessing`` child: the caller's ``__main__`` is never re-imported, so
a plain script without an ``if __name__ == "__main__":`` guard, a notebook and an ETL task
all work the same.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from docvlm.errors import CorruptInputError, InputError, PasswordRequiredError

__all__ = ["ENCRYPTED", "InProcessPdf", "PdfReader", "RenderWorker", "open_pdf_document", "serve"]

PdfData = bytes | Path


class PdfReader(Protocol):
    """An open PDF: page sizes in points, and pages rendered at a scale (pixels/point)."""

    def open(self, data: PdfData, password: str | None, name: str) -> list[tuple[float, float]]: ...

    def render(self, index: int, scale: float, name: str) -> Image.Image: ...

    def close(self) -> None: ...


def open_pdf_document(data: PdfData, password: str | None) -> Any:
    """A pypdfium2 document (raises pypdfium2's PdfiumError)."""
    import pypdfium2 as pdfium

    return pdfium.PdfDocument(data if isinstance(data, bytes) else str(data), password=password)


#: The cause given for an encrypted PDF read without a password.
ENCRYPTED = "it is encrypted: give its password (--password, or password= in Python)"


def _open_error(message: str, password: str | None, name: str) -> InputError:
    if "password" in message.lower():
        hint = "a wrong password was given" if password else ENCRYPTED
        return PasswordRequiredError(hint, source=name)
    return CorruptInputError(f"cannot open the PDF ({message})", source=name)


def _sizes(document: Any) -> list[tuple[float, float]]:
    sizes = []
    for index in range(len(document)):
        page = document[index]
        width, height = page.get_size()
        sizes.append((float(width), float(height)))
        page.close()
    return sizes


#: PDFium keeps parsed state for every page it has loaded (about 130 kB a page here), so
#: a long document is reopened after this many pages to keep memory flat (a reopen costs
#: well under a millisecond).
REOPEN_EVERY = 16


class _Document:
    """An open pypdfium2 document that is reopened every ``REOPEN_EVERY`` pages."""

    def __init__(self, data: PdfData, password: str | None) -> None:
        self._data, self._password = data, password
        self._document = open_pdf_document(data, password)
        self._rendered = 0

    def sizes(self) -> list[tuple[float, float]]:
        return _sizes(self._document)

    def render(self, index: int, scale: float) -> Image.Image:
        if self._rendered >= REOPEN_EVERY:
            self._document.close()
            self._document = open_pdf_document(self._data, self._password)
            self._rendered = 0
        self._rendered += 1
        page = self._document[index]
        try:
            image: Image.Image = page.render(scale=scale).to_pil()
        finally:
            page.close()
        return image.convert("RGB") if image.mode != "RGB" else image

    def close(self) -> None:
        self._document.close()


class InProcessPdf:
    """pypdfium2 in this process: fastest, no protection against a hanging page."""

    def __init__(self) -> None:
        self._document: _Document | None = None

    def open(self, data: PdfData, password: str | None, name: str) -> list[tuple[float, float]]:
        import pypdfium2 as pdfium

        try:
            self._document = _Document(data, password)
            return self._document.sizes()
        except pdfium.PdfiumError as error:
            raise _open_error(str(error), password, name) from error

    def render(self, index: int, scale: float, name: str) -> Image.Image:
        import pypdfium2 as pdfium

        assert self._document is not None, "open() first"
        try:
            return self._document.render(index, scale)
        except pdfium.PdfiumError as error:
            raise CorruptInputError(
                f"cannot render the page ({error})", source=name, page=index + 1
            ) from error

    def close(self) -> None:
        if self._document is not None:
            self._document.close()
            self._document = None


def serve(connection: Connection) -> None:
    """The worker's loop: open documents and render pages on request."""
    import pypdfium2 as pdfium

    document: _Document | None = None
    while True:
        try:
            request = connection.recv()
        except EOFError:
            return
        kind = request[0]
        try:
            if kind == "open":
                if document is not None:
                    document.close()
                document = _Document(request[1], request[2])
                connection.send(("ok", document.sizes()))
            elif kind == "render":
                assert document is not None, "open first"
                image = document.render(request[1], request[2])
                connection.send(("ok", (image.size, image.tobytes())))
            elif kind == "close":
                if document is not None:
                    document.close()
                    document = None
                connection.send(("ok", None))
        except pdfium.PdfiumError as error:
            connection.send(("error", str(error)))
        except Exception as error:  # reported to the parent, never kills the worker
            connection.send(("error", f"{type(error).__name__}: {error}"))


def _stop(process: subprocess.Popen[bytes], connection: Connection) -> None:
    if not connection.closed:
        connection.close()
    if process.poll() is None:
        process.kill()
        process.wait()


class RenderWorker:
    """pypdfium2 in a child process; a page slower than ``timeout`` seconds is abandoned.

    One worker serves many documents; it is restarted (and the document reopened) after
    a timeout or a crash. ``target`` names the child's loop as ``"module:function"``
    (tests pass a slow one); the child imports it with this process's ``sys.path``.
    """

    def __init__(self, timeout: float, target: str = "docvlm.reading.pdf:serve") -> None:
        self.timeout = timeout
        self._target = target
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._opened: tuple[PdfData, str | None] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def _start(self) -> Connection:
        if self._process is None or self._process.poll() is not None:
            ours, theirs = socket.socketpair()
            environment = dict(os.environ)
            environment["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
            with theirs:
                self._process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "docvlm.reading.render_worker",
                        str(theirs.fileno()),
                        self._target,
                    ],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    env=environment,
                )
            self._connection = Connection(ours.detach())
            # a client dropped without close() must not leave its worker running
            self._finalizer = weakref.finalize(self, _stop, self._process, self._connection)
        assert self._connection is not None
        return self._connection

    def _ask(self, request: tuple[Any, ...], timeout: float | None) -> tuple[str, Any]:
        connection = self._start()
        try:
            connection.send(request)
        except OSError:  # the worker died between two requests
            self._kill()
            return ("error", "the renderer crashed")
        if not connection.poll(timeout):
            self._kill()
            raise TimeoutError
        try:
            reply: tuple[str, Any] = connection.recv()
        except (EOFError, OSError):  # the worker crashed (the renderer aborted)
            self._kill()
            return ("error", "the renderer crashed")
        return reply

    def _kill(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # stops this worker once; a restart registers the next one
            self._finalizer = None
        self._process = None
        self._connection = None

    def open(self, data: PdfData, password: str | None, name: str) -> list[tuple[float, float]]:
        try:
            status, value = self._ask(("open", data, password), self.timeout)
        except TimeoutError:
            raise CorruptInputError(
                f"opening took longer than {self.timeout:g} s", source=name
            ) from None
        if status != "ok":
            raise _open_error(str(value), password, name)
        self._opened = (data, password)
        sizes: list[tuple[float, float]] = value
        return sizes

    def render(self, index: int, scale: float, name: str) -> Image.Image:
        if self._process is None and self._opened is not None:  # restarted after a timeout
            self._ask(("open", *self._opened), self.timeout)
        try:
            status, value = self._ask(("render", index, scale), self.timeout)
        except TimeoutError:
            raise CorruptInputError(
                f"rendering took longer than {self.timeout:g} s; the page was abandoned",
                source=name,
                page=index + 1,
            ) from None
        if status != "ok":
            raise CorruptInputError(
                f"cannot render the page ({value})", source=name, page=index + 1
            )
        size, raw = value
        return Image.frombytes("RGB", size, raw)

    def close(self) -> None:
        """Close the document (the worker stays up for the next one)."""
        if self._process is not None and self._opened is not None:
            with contextlib.suppress(TimeoutError):
                self._ask(("close",), self.timeout)
        self._opened = None

    def shutdown(self) -> None:
        """Stop the worker process."""
        self._kill()
        self._opened = None
