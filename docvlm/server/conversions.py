"""Conversions for the service: a bounded queue in front of a few worker threads.

Each worker thread has its own ``DocVLM`` client (its own render worker), and every client
gets its engines from one ``SharedEngines``, so the model is loaded once and the crops of
all running conversions meet in one generation stream.
"""

from __future__ import annotations

import io
import math
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from docvlm.client import DocVLM
from docvlm.document import Document
from docvlm.engines import EngineFactory, load_engine
from docvlm.reading.pdf import InProcessPdf, PdfReader
from docvlm.server.archive import LockedPdf
from docvlm.server.batching import SharedEngines
from docvlm.settings import Settings
from docvlm.tasks import TaskName

__all__ = ["ConversionJob", "Converter", "QueueFullError"]


class _ServiceClient(DocVLM):
    """A client for one of several threads: PDFs rendered in this process (no render
    timeout set) take the process-wide pdfium lock."""

    def _reader(self) -> PdfReader:
        reader = super()._reader()
        return LockedPdf(reader) if isinstance(reader, InProcessPdf) else reader


class QueueFullError(Exception):
    """Every worker is busy and the queue is full; ``retry_after`` is a wait in seconds."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"the conversion queue is full; retry in {retry_after} s")


@dataclass(frozen=True)
class ConversionJob:
    """One uploaded file and what to do with it (the options of ``DocVLM.convert``)."""

    name: str
    data: bytes
    tasks: tuple[TaskName, ...] = ("text",)
    layout: bool = False
    pages: str | None = None
    password: str | None = None
    dpi: int | None = None
    max_new_tokens: int | None = None
    question: str | None = None


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

    def submit(self, job: ConversionJob) -> Future[Document]:
        """Start ``job``, or raise ``QueueFullError`` when the queue is full."""
        with self._lock:
            if self._admitted >= self.workers + self.queue_limit:
                raise QueueFullError(self._retry_after())
            self._admitted += 1
        try:
            return self._pool.submit(self._convert, job)
        except BaseException:
            self._release(None)
            raise

    def _retry_after(self) -> int:
        waiting = max(self._admitted - self.workers + 1, 1)
        return max(1, math.ceil(self._seconds * waiting / self.workers))

    def _release(self, seconds: float | None) -> None:
        with self._lock:
            self._admitted -= 1
            if seconds is not None:
                self._seconds = 0.8 * self._seconds + 0.2 * seconds

    def _convert(self, job: ConversionJob) -> Document:
        started = time.monotonic()
        client = self._clients.get()
        try:
            upload = io.BytesIO(job.data)
            upload.name = job.name
            return client.convert(
                upload,
                tasks=job.tasks,
                layout=job.layout,
                pages=job.pages,
                password=job.password,
                dpi=job.dpi,
                max_new_tokens=job.max_new_tokens,
                question=job.question,
            )
        finally:
            self._clients.put(client)
            self._release(time.monotonic() - started)

    def close(self) -> None:
        """Finish running conversions, then drop the models and render workers."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        for client in self._all:
            client.close()
        self.engines.close()
