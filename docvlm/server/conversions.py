"""Conversions for the service: a bounded queue in front of a few worker threads.

Each worker thread has its own ``DocVLM`` client (its own render worker), and every client
gets its engines from one ``SharedEngines``, so the model is loaded once and the crops of
all running conversions meet in one generation stream.

A place in the queue is taken (``admit``) before the upload is read, so a full queue
answers 429 without reading a byte; each job carries a cancel flag, handed to
``DocVLM.convert`` as its ``cancel`` function: the run's stage threads check it between
pages and engine calls (they do not see the worker thread's ``watching`` flag).
"""

from __future__ import annotations

import io
import math
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from docvlm.client import DocVLM
from docvlm.document import Document
from docvlm.engines import EngineFactory, load_engine
from docvlm.reading.pdf import InProcessPdf, PdfData, PdfReader
from docvlm.server.archive import LockedPdf
from docvlm.server.batching import SharedEngines
from docvlm.server.cancel import ConversionCancelled, check_cancelled, watching
from docvlm.settings import Settings
from docvlm.tasks import TaskName

__all__ = [
    "ConversionCancelled",
    "ConversionJob",
    "Converter",
    "QueueFullError",
    "ServiceClosingError",
]


class _Cancellable:
    """A ``PdfReader`` that stops a cancelled conversion before it renders another page
    (a long PDF of blank pages never reaches the engine, where the other check is)."""

    def __init__(self, reader: PdfReader) -> None:
        self._reader = reader

    def open(self, data: PdfData, password: str | None, name: str) -> list[tuple[float, float]]:
        check_cancelled()
        return self._reader.open(data, password, name)

    def render(self, index: int, scale: float, name: str) -> Image.Image:
        check_cancelled()
        return self._reader.render(index, scale, name)

    def close(self) -> None:
        self._reader.close()


class _ServiceClient(DocVLM):
    """A client for one of several threads: PDFs rendered in this process (no render
    timeout set) take the process-wide pdfium lock, and a cancelled conversion stops at
    its next page."""

    def _reader(self) -> PdfReader:
        reader = super()._reader()
        return _Cancellable(LockedPdf(reader) if isinstance(reader, InProcessPdf) else reader)


class QueueFullError(Exception):
    """Every worker is busy and the queue is full; ``retry_after`` is a wait in seconds."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"the conversion queue is full; retry in {retry_after} s")


class ServiceClosingError(Exception):
    """The server is shutting down and takes no new conversions."""


@dataclass(frozen=True)
class ConversionJob:
    """One uploaded file and what to do with it (the options of ``DocVLM.convert``).

    ``data`` is the file's bytes or the path it was streamed to (the Document is then
    named ``name``, with ``sha256``); setting ``cancel`` stops the conversion at its next
    check."""

    name: str
    data: bytes | Path
    tasks: tuple[TaskName, ...] = ("text",)
    layout: bool = False
    pages: str | None = None
    password: str | None = None
    dpi: int | None = None
    max_new_tokens: int | None = None
    question: str | None = None
    orient: bool = True
    sha256: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)


class Converter:
    """Runs ``ConversionJob``s on ``workers`` threads; at most ``queue`` more wait.

    ``submit`` raises ``QueueFullError`` instead of queueing past the limit, so a client
    learns at once to come back later (HTTP 429) and memory stays bounded.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        checkpoint: str | None = None,
        engine_factory: EngineFactory = load_engine,
        workers: int = 2,
        queue_limit: int = 8,
        window: float = 0.005,
    ) -> None:
        if workers < 1 or queue_limit < 0:
            raise ValueError("workers must be >= 1 and the queue limit >= 0")
        self.settings = settings
        self.engines = SharedEngines(engine_factory, max_batch=settings.batch_size, window=window)
        self.workers = workers
        self.queue_limit = queue_limit
        self._all = [
            _ServiceClient(settings, checkpoint=checkpoint, engine_factory=self.engines)
            for _ in range(workers)
        ]
        self._clients: queue.SimpleQueue[DocVLM] = queue.SimpleQueue()
        for client in self._all:
            self._clients.put(client)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="docvlm-convert")
        self._lock = threading.Lock()
        self._admitted = 0
        self._running: set[threading.Event] = set()
        self._closing = False
        self._seconds = 5.0  # running mean of a conversion's duration, for Retry-After

    @property
    def admitted(self) -> int:
        """Conversions running or waiting."""
        with self._lock:
            return self._admitted

    def check(self, tasks: Sequence[TaskName], question: str | None) -> None:
        """Raise what ``DocVLM.convert`` would for these options before the file is read."""
        if "ask" in tasks and not question:
            raise ValueError("the 'ask' task needs a question")
        for task in tasks:
            self._all[0].checkpoint_for(task)

    def admit(self) -> None:
        """Take a place for one conversion, before its upload is read; raise
        ``QueueFullError`` when every place is taken, ``ServiceClosingError`` when the
        server is stopping. Give it back with ``submit`` or ``release``."""
        with self._lock:
            if self._closing:
                raise ServiceClosingError("the server is shutting down")
            if self._admitted >= self.workers + self.queue_limit:
                raise QueueFullError(self._retry_after())
            self._admitted += 1

    def release(self) -> None:
        """Give back a place taken by ``admit`` whose job was never submitted."""
        self._release(None)

    def submit(self, job: ConversionJob, *, admitted: bool = False) -> Future[Document]:
        """Start ``job`` (in a place already taken when ``admitted``), or raise
        ``QueueFullError`` when the queue is full."""
        if not admitted:
            self.admit()
        with self._lock:
            self._running.add(job.cancel)
            if self._closing:
                job.cancel.set()
        try:
            return self._pool.submit(self._convert, job)
        except BaseException:
            self._release(None, job)
            raise

    def _retry_after(self) -> int:
        waiting = max(self._admitted - self.workers + 1, 1)
        return max(1, math.ceil(self._seconds * waiting / self.workers))

    def _release(self, seconds: float | None, job: ConversionJob | None = None) -> None:
        with self._lock:
            self._admitted -= 1
            if job is not None:
                self._running.discard(job.cancel)
            if seconds is not None:
                self._seconds = 0.8 * self._seconds + 0.2 * seconds

    def _convert(self, job: ConversionJob) -> Document:
        started = time.monotonic()
        client = self._clients.get()
        try:
            with watching(job.cancel):
                check_cancelled()  # given up while it waited in the queue
                return _named(self._run(client, job), job)
        finally:
            self._clients.put(client)
            self._release(time.monotonic() - started, job)

    def _run(self, client: DocVLM, job: ConversionJob) -> Document:
        source: io.BytesIO | Path
        if isinstance(job.data, bytes):
            source = io.BytesIO(job.data)
            source.name = job.name
        else:
            source = job.data
        return client.convert(
            source,
            tasks=job.tasks,
            layout=job.layout,
            pages=job.pages,
            password=job.password,
            dpi=job.dpi,
            max_new_tokens=job.max_new_tokens,
            question=job.question,
            orient=job.orient,
            cancel=lambda: _check(job.cancel),  # the run's threads do not see ``watching``
        )

    @property
    def closing(self) -> bool:
        """True once ``stop`` (or ``close``) was called."""
        return self._closing

    def stop(self) -> None:
        """Refuse new work and cancel running and waiting conversions (each stops at its
        next check); what ``docvlm serve`` does first on SIGTERM."""
        with self._lock:
            self._closing = True
            for event in self._running:
                event.set()

    def close(self) -> None:
        """``stop``, wait for the conversions to stop, then drop the models and render
        workers."""
        self.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for client in self._all:
            client.close()
        self.engines.close()


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise ConversionCancelled("the conversion was cancelled")


def _named(document: Document, job: ConversionJob) -> Document:
    """``document`` read from the file ``job.data`` was streamed to, named as uploaded:
    the temporary path never reaches the client."""
    if isinstance(job.data, bytes):
        return document.model_copy(update={"sha256": job.sha256 or document.sha256})
    path = str(job.data)

    def rename(value: object) -> object:
        if isinstance(value, str):
            return value.replace(path, job.name)
        if isinstance(value, list):
            return [rename(item) for item in value]
        if isinstance(value, dict):
            return {key: rename(item) for key, item in value.items()}
        return value

    fields = rename(document.model_dump(mode="json"))
    assert isinstance(fields, dict)
    fields["sha256"] = job.sha256 or fields.get("sha256")
    return Document.model_validate(fields)
