"""The overlapped stages of an archive run, each on its own thread, joined by bounded queues.

::

    works -> render lanes (N threads, each driving its own render worker process):
                 pages rendered, crops cut, requests written  ->  plans
          -> generation thread: every plan that is ready, as one stream of requests
          -> writer (the caller's thread): results parsed, pages and documents assembled

Back-pressure: each queue holds a few items, so a slow engine stops rendering, and memory
stays flat over any number of files. Per-page failures are data: a crashed render worker
is retried, an engine error is retried on smaller batches (CUDA out of memory halves the
batch), then the page is recorded as failed with its cause.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from docvlm.archive.passwords import password_for
from docvlm.archive.work import Finished, Options, Plan, Work, finish_plan
from docvlm.engines.pool import ModelPool
from docvlm.errors import InputError
from docvlm.reading.pages import read_pages
from docvlm.reading.pdf import InProcessPdf, PdfReader, RenderWorker
from docvlm.reading.reads import plan_reads
from docvlm.reading.render import (
    PageFailure,
    PageImage,
    PageSelection,
    load_pages,
)
from docvlm.reading.requests import Engine, Generation, Request
from docvlm.reading.upright import upright
from docvlm.results import Page
from docvlm.tasks import TaskName
from parsers import Box

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "Finished",
    "Options",
    "Plan",
    "Stages",
    "Work",
    "finish_plan",
    "generate_plans",
    "generate_safely",
    "read_layout",
    "render_work",
]


_DONE = object()


class _Aborted(Exception):
    pass


def _retryable(error: InputError) -> bool:
    return "renderer crashed" in error.reason


class _Skipping:
    """A PDF reader that does not render pages a previous run finished."""

    def __init__(self, reader: PdfReader, skip: Iterable[int]) -> None:
        self._reader, self._skip = reader, frozenset(skip)

    def open(self, data: Any, password: str | None, name: str) -> list[tuple[float, float]]:
        return self._reader.open(data, password, name)

    def render(self, index: int, scale: float, name: str) -> Image.Image:
        if index + 1 in self._skip:
            from PIL import Image

            return Image.new("RGB", (1, 1), "white")
        return self._reader.render(index, scale, name)

    def close(self) -> None:
        self._reader.close()


class Stages:
    """Runs works through the overlapped stages; iterate ``run(works)`` for ``Finished``."""

    def __init__(
        self,
        models: ModelPool,
        options: Options,
        *,
        reader: PdfReader | None = None,
        cancel: Callable[[], None] | None = None,
    ) -> None:
        self.models = models
        self.options = options
        self.settings = models.settings
        lanes = options.render_workers if self.settings.render_timeout is not None else 1
        # in-process pypdfium2 is not thread-safe: one lane; a caller's reader: one lane
        self.lanes = 1 if reader is not None else max(1, lanes)
        self._reader = reader
        self._cancel = cancel  # raises to stop the run; checked at every hand-over
        self._abort = threading.Event()
        self.stop_feeding = threading.Event()
        self._renders: queue.Queue[Any] = queue.Queue(maxsize=self.lanes)
        self._plans: queue.Queue[Any] = queue.Queue(maxsize=max(4, self.settings.batch_size))
        self._done: queue.Queue[Any] = queue.Queue(maxsize=8)
        self.engine_seconds = 0.0
        self.started = time.perf_counter()
        self._lock = threading.Lock()

    # --- plumbing ------------------------------------------------------------------------

    def _put(self, target: queue.Queue[Any], item: object) -> None:
        while True:
            self._check()
            try:
                target.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _get(self, source: queue.Queue[Any]) -> Any:
        while True:
            self._check()
            try:
                return source.get(timeout=0.1)
            except queue.Empty:
                continue

    def _check(self) -> None:
        if self._abort.is_set():
            raise _Aborted
        if self._cancel is not None:
            self._cancel()  # what it raises reaches the caller's thread (``guarded``)

    def _thread(self, body: Callable[[], None], name: str) -> threading.Thread:
        def guarded() -> None:
            try:
                body()
            except _Aborted:
                pass
            except BaseException as error:  # handed to the caller's thread, raised there
                self._abort.set()
                try:
                    self._done.put_nowait(error)
                except queue.Full:
                    self._done.get_nowait()
                    self._done.put_nowait(error)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        return thread

    def run(self, works: Iterable[Work]) -> Iterator[Finished]:
        """Finished pages and ends of works, as they come; raises what a stage raised."""
        threads = [self._thread(lambda: self._feed(works), "docvlm-feed")]
        threads += [self._thread(self._render, f"docvlm-render-{i}") for i in range(self.lanes)]
        threads.append(self._thread(self._generate, "docvlm-generate"))
        try:
            while True:
                item = self._done.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._abort.set()
            for thread in threads:
                thread.join(timeout=30)

    # --- stages --------------------------------------------------------------------------

    def _feed(self, works: Iterable[Work]) -> None:
        for work in works:
            if self.stop_feeding.is_set():
                break
            self._put(self._renders, work)
        for _ in range(self.lanes):
            self._put(self._renders, _DONE)

    def _render(self) -> None:
        timeout = self.settings.render_timeout
        reader: PdfReader = self._reader or (
            RenderWorker(timeout) if timeout is not None else InProcessPdf()
        )
        try:
            while (work := self._get(self._renders)) is not _DONE:
                self._render_work(work, reader)
        finally:
            if isinstance(reader, RenderWorker) and reader is not self._reader:
                reader.shutdown()
            self._put(self._plans, _DONE)

    def _render_work(self, work: Work, reader: PdfReader) -> None:
        for item in render_work(work, reader, self.options, self.models):
            self._put(self._plans if isinstance(item, Plan) else self._done, item)

    def _generate(self) -> None:
        lanes_left = self.lanes
        window = max(2, 4 * self.settings.batch_size)
        while lanes_left:
            first = self._get(self._plans)
            batch: list[Plan] = []
            for item in self._drain(first, window):
                if item is _DONE:
                    lanes_left -= 1
                else:
                    batch.append(item)
            if batch:
                self._read(batch)
        self._put(self._done, _DONE)

    def _drain(self, first: Any, window: int) -> list[Any]:
        """``first`` and every plan already waiting, up to ``window`` requests."""
        items, requests = [first], 0 if first is _DONE else len(first.requests)
        while requests < window:
            try:
                item = self._plans.get_nowait()
            except queue.Empty:
                break
            items.append(item)
            requests += 0 if item is _DONE else len(item.requests)
        return items

    def _read(self, plans: list[Plan]) -> None:
        if self.options.layout or self.options.regions is not None:
            self._read_layout(plans)
            return
        slots, seconds = generate_plans(plans, self.models.engine, self.options.retries)
        with self._lock:
            self.engine_seconds += seconds
        for plan, outputs in zip(plans, slots, strict=True):
            self._put(self._done, Finished(plan.work, plan=plan, outputs=outputs))

    def _read_layout(self, plans: list[Plan]) -> None:
        pages = [plan.page for plan in plans if plan.page is not None]
        started = time.perf_counter()
        done = read_layout(self.models, pages, self.options)
        with self._lock:
            self.engine_seconds += time.perf_counter() - started
        for plan, page in zip(plans, done, strict=True):
            self._put(self._done, Finished(plan.work, page=page))


def _pages(
    work: Work, reader: PdfReader, options: Options, models: ModelPool, pages: PageSelection
) -> Generator[PageImage | PageFailure, None, None]:
    assert work.source is not None
    pages_of = load_pages(
        work.source,
        pages=pages,
        password=password_for(work.name, options.passwords, options.password),
        dpi=options.dpi,
        backend=options.backend,
        limits=models.settings.limits(),
        reader=_Skipping(reader, work.finished),
    )
    return cast(Generator[PageImage | PageFailure, None, None], pages_of)  # closable


def render_work(
    work: Work, reader: PdfReader, options: Options, models: ModelPool
) -> Iterator[Plan | Finished]:
    """A work's pages rendered and planned (``Plan``s, for the engine), its failed pages
    (``Finished`` with a page), then its end (``Finished`` with ``end``). The model pool
    is asked only for each task's checkpoint and resolution; a page whose renderer crashed
    is tried again ``options.retries`` times."""
    if work.kind != "read":
        yield Finished(work, error=work.error, end=True)
        return
    count, retry, error, order = 0, [], None, []
    try:
        for item in _pages(work, reader, options, models, options.pages):
            order.append(item.number)  # the selection's order ("4,2"), kept in the Document
            if item.number in work.finished:
                continue
            if isinstance(item, PageFailure) and _retryable(item.error):
                retry.append(item)
                continue
            yield _planned(work, item, options, models)
            count += 1
    except InputError as failure:
        error = failure.reason
    for failed in retry:
        item = failed
        for _ in range(options.retries):
            again = _pages(work, reader, options, models, [failed.number])
            try:
                item = next(again)
            except InputError as failure:
                item = PageFailure(work.name, failed.number, failure)
            finally:
                again.close()
            if not isinstance(item, PageFailure):
                break
        yield _planned(work, item, options, models)
        count += 1
    yield Finished(work, count=count, error=error, end=True, order=tuple(order))


def _planned(
    work: Work, item: PageImage | PageFailure, options: Options, models: ModelPool
) -> Plan | Finished:
    if isinstance(item, PageFailure):
        page = Page(number=item.number, status="error", error=item.error.reason)
        return Finished(work, page=page)
    item = upright(item, options.orient)
    size = item.image.size
    if options.layout or options.regions is not None:
        return Plan(work, item, item.number, size, item.dpi, item.warnings, [], [], item.turn)
    whole = Box(x0=0, y0=0, x1=size[0], y1=size[1])
    reads, requests = plan_reads(
        item,
        [(task, whole) for task in options.tasks],
        models.engine,
        options.max_new_tokens,
        options.question,
    )
    return Plan(work, None, item.number, size, item.dpi, item.warnings, reads, requests, item.turn)


def generate_plans(
    plans: Sequence[Plan], engine_for: Callable[[TaskName], Engine], retries: int
) -> tuple[list[list[Generation | str]], float]:
    """Each plan's generations (or, where the engine failed, the cause), with one call per
    model for every request of every plan together; and the seconds the engine took."""
    slots: list[list[Generation | str]] = [[""] * len(p.requests) for p in plans]
    places: dict[str, tuple[TaskName, list[tuple[int, int]]]] = {}
    for index, plan in enumerate(plans):
        position = 0
        for read in plan.reads:
            task, found = places.setdefault(read.checkpoint, (read.task, []))
            for _ in read.frames:
                found.append((index, position))
                position += 1
    seconds = 0.0
    for task, found in places.values():
        requests = [plans[i].requests[k] for i, k in found]
        outputs, spent = generate_safely(engine_for(task), requests, retries)
        seconds += spent
        for (i, k), output in zip(found, outputs, strict=True):
            slots[i][k] = output
    return slots, seconds


def generate_safely(
    engine: Engine, requests: list[Request], retries: int
) -> tuple[list[Generation | str], float]:
    """Generations, or for requests that failed after retries the cause as text (CUDA out
    of memory halves the batch first); and the seconds the engine took."""
    spent = 0.0
    for attempt in range(retries + 1):
        started = time.perf_counter()
        try:
            found: list[Generation | str] = list(engine.generate(requests))
            return found, spent + time.perf_counter() - started
        except Exception as error:  # engine failures are data, after retries
            spent += time.perf_counter() - started
            cause = f"the engine failed ({type(error).__name__}: {error})"
            if "OutOfMemory" in type(error).__name__ and len(requests) > 1:
                half = len(requests) // 2
                first, first_spent = generate_safely(engine, requests[:half], retries)
                rest, rest_spent = generate_safely(engine, requests[half:], retries)
                return first + rest, spent + first_spent + rest_spent
            if attempt == retries:
                return [cause] * len(requests), spent
    raise AssertionError("unreachable")


def read_layout(models: ModelPool, pages: list[PageImage], options: Options) -> list[Page]:
    """Layout mode, where the model sits between the stages: regions found (or the
    caller's), cut and read, the pages parsed. If the whole batch fails, each page says why."""
    try:
        return read_pages(
            pages,
            options.tasks,
            models.engine,
            options.max_new_tokens,
            options.question,
            options.regions if options.regions is not None else "model",
        )
    except Exception as error:  # engine failures are data
        cause = f"the engine failed ({type(error).__name__}: {error})"
        return [Page(number=p.number, status="error", error=cause) for p in pages]
