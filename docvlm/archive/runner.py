"""Archive conversion: sources in, Documents out to a sink, resumable, with a summary.

``Run(models, options, destination).documents(sources)`` drives the overlapped stages
(``docvlm.archive.pipeline``) and, with a destination (an ``Output``, or its spelling,
parsed once here), its sink and manifest:

1. each source is hashed (SHA-256; unchanged files by size and time from the manifest);
   a name already written under the same job is skipped, the same bytes met under a
   second name are read once, and pages a killed run finished are not read again;
2. pages are read by the stages; each finished page is committed to the manifest;
3. a finished document is written to the sink; at each sink commit the documents it
   covers are committed to the manifest with the sink's cursor.

A destination is written by one run at a time (``docvlm.archive.lock``); a record that replaces
an earlier one (``retry_failed``, changed bytes) leaves the sink compacted to one record
per source at the end, or at the next start after a kill.

``Summary.exit_code`` is an ``ExitCode`` (docs/errors.md): OK, FAILED (files of the
destination failed, in this run or an earlier one) or STOPPED by ``max_error_rate``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from docvlm.archive.manifest import Manifest
from docvlm.archive.output import Output
from docvlm.archive.passwords import password_for
from docvlm.archive.pipeline import Finished, Options, Stages, Work
from docvlm.archive.records import JobKey, ReadKey, build_document, content_hash, renamed, seekable
from docvlm.archive.sinks import write_record
from docvlm.archive.summary import MIN_FILES_FOR_RATE, Observer, Summary, count_files
from docvlm.document import Document
from docvlm.engines.pool import HasModels, ModelPool, pool_of
from docvlm.errors import ExitCode
from docvlm.reading.pdf import PdfReader
from docvlm.reading.render import Source, source_name
from docvlm.reading.sources import Item, expand_sources
from docvlm.results import Page
from docvlm.tasks import TASKS

__all__ = ["Observer", "Options", "Run", "Summary", "run_job"]


@dataclass
class _Open:
    """A document being read: its pages so far, and once rendering ended, how many."""

    pages: dict[int, Page] = field(default_factory=dict)
    expected: int | None = None
    error: str | None = None
    order: tuple[int, ...] = ()


@dataclass
class _Counts:
    done: int = 0
    partial: int = 0
    failed: int = 0
    skipped: int = 0
    ignored: int = 0
    skipped_bad: int = 0  # skipped, but recorded as failed or partial by an earlier run
    pages_done: int = 0
    pages_failed: int = 0
    pages_reused: int = 0
    load_seconds: float = 0.0  # the models loading, before the stages start


class Run:
    """One conversion job; see the module docstring. ``models`` is the model pool the
    stages read with (a ``DocVLM`` client may be passed for its pool)."""

    def __init__(
        self,
        models: ModelPool | HasModels,
        options: Options,
        destination: str | Path | Output | None = None,
        *,
        redo: bool = False,
        max_error_rate: float | None = None,
        observer: Observer | None = None,
        retry_failed: bool = False,
        wait: bool = False,
        reader: PdfReader | None = None,
        cancel: Callable[[], None] | None = None,
    ) -> None:
        output = Output.parse(destination) if isinstance(destination, str | Path) else destination
        if output is not None:
            output.check_local()  # a URI, JSON Lines parts (the Ray runner's), a file in the way
        if options.formats and (output is None or output.kind != "folder"):
            raise ValueError("formats are written per document into an output folder: out='DIR/'")
        self.models = pool_of(models)
        self.retry_failed = retry_failed
        self.wait = wait
        self.options = options
        self.output = output
        self.redo = redo
        self.max_error_rate = max_error_rate
        self.observer = observer
        self.summary: Summary | None = None
        self._counts = _Counts()
        self._stopped = False
        self._error_rate: float | None = None
        self._reading: set[str] = set()  # content read in this run (its copies wait for it)
        self._reader, self._cancel = reader, cancel  # the stages' (see ``Stages``)
        self._one = False  # ``document``: the source is one document, never expanded

    def _password(self, name: str) -> str | None:
        return password_for(name, self.options.passwords, self.options.password)

    # --- keys --------------------------------------------------------------------------

    def job_key(self) -> JobKey:
        """What changes the answers in this run (loads the models to learn their sizes)."""
        tasks = list(self.options.tasks)
        if self.options.layout and self.options.regions is None:
            tasks.append("layout")
        reads = []
        for task in dict.fromkeys(tasks):
            engine = self.models.engine(task)
            spec = TASKS[task]
            reads.append(
                ReadKey(
                    task=task,
                    checkpoint=engine.checkpoint,
                    prompt=spec.render_prompt(self.options.question if task == "ask" else None),
                    resolution=engine.resolution,
                    max_new_tokens=self.options.max_new_tokens or spec.max_new_tokens,
                )
            )
        selection = self.options.pages
        return JobKey(
            reads=tuple(reads),
            dpi=self.options.dpi,
            regions="caller"
            if self.options.regions is not None
            else ("layout" if self.options.layout else "page"),
            pages=selection if selection is None or isinstance(selection, str) else str(selection),
        )

    # --- the job -----------------------------------------------------------------------

    def documents(self, sources: Iterable[Source]) -> Iterator[Document]:
        """Documents as written (``self.summary`` set at the end); ``DestinationBusyError``
        at once while another run writes the destination (unless ``wait``)."""
        with ExitStack() as stack:
            if self.output is not None:  # before the models load: a busy --out fails fast
                stack.enter_context(self.output.lock(wait=self.wait))
            yield from self._documents(list(sources))

    def document(self, source: Source) -> Document:
        """``source`` read as one document, a one-item run (what ``DocVLM.convert`` does):
        a folder or archive is not expanded, and the pages keep the selection's order."""
        self._one = True
        (found,) = self.documents([source])
        return found

    def _documents(self, sources: list[Source]) -> Iterator[Document]:
        loading = time.perf_counter()
        job = self.job_key()
        self._counts.load_seconds = time.perf_counter() - loading
        fingerprint = job.fingerprint()
        manifest = sink = None
        if self.output is not None:
            manifest = self.output.manifest()
            if self.redo:
                manifest.reset()
            manifest.register_job(fingerprint, job.model_dump_json())
            sink = self.output.open_sink(
                cursor=manifest.cursor(),
                formats=self.options.formats,
                password_for=self._password,
                limits=self.models.settings.limits(),
            )
            if manifest.needs_compaction():  # a run replacing records was killed
                manifest.compacted(sink.compact())
        stages = Stages(self.models, self.options, reader=self._reader, cancel=self._cancel)
        if self.observer:
            self.observer.started(count_files(sources))
        pending: list[tuple[Document, str, str | None]] = []
        waiting: dict[str, list[Work]] = {}
        ended: dict[str, str | None] = {}  # content read in this run -> its stop error
        opened: dict[int, _Open] = {}
        clean = False
        try:
            works = self._works(sources, manifest, fingerprint, stages)
            run = cast(Generator[Finished, None, None], stages.run(works))
            with closing(run) as finished:  # closed on a break: the stages stop
                for item in finished:
                    for document, stop in self._handle(
                        item, opened, waiting, ended, manifest, fingerprint
                    ):
                        if sink is not None and manifest is not None:
                            document = write_record(sink, document)  # as corrected
                            pending.append((document, fingerprint, stop))
                            if sink.due():
                                manifest.commit_written(pending, sink.commit())
                                pending = []
                        self._count(document, stages)
                        yield document
                    if self._stopped:  # over --max-error-rate: stop now, not after the rest
                        break
            clean = True
        finally:
            try:
                if sink is not None and manifest is not None and clean:
                    manifest.commit_written(pending, sink.commit())
                    if manifest.needs_compaction():
                        manifest.compacted(sink.compact())
                    sink.close()
                elif sink is not None:
                    sink.abandon()
            finally:
                if manifest is not None:
                    manifest.close()
                self._finish(stages)

    def _works(
        self, sources: list[Source], manifest: Manifest | None, job: str, stages: Stages
    ) -> Iterator[Work]:
        """Each entry behind ``sources``, hashed and checked against the manifest (this runs
        on the feeding thread, ahead of the readers)."""
        seen = self._reading

        def ignored(path: str, why: str) -> None:
            self._counts.ignored += 1
            if self.observer:
                self.observer.ignored(path, why)

        options, limits = self.options, self.models.settings.limits()
        items = (
            (Item(source_name(s), s) for s in sources)
            if self._one
            else expand_sources(
                sources, limits, include=options.include, exclude=options.exclude, on_skip=ignored
            )
        )
        for item in items:
            if item.source is None:  # rejected before reading: recorded once, like the rest
                error = item.error.reason if item.error else "cannot be read"
                path = Path(item.name)
                _, sha256 = self._hashed(path, item.name, manifest) if path.is_file() else (0, None)
                status = manifest.written_status(item.name, job, sha256) if manifest else None
                if status is not None and not self._retry(status):
                    yield Work(item.name, None, sha256, kind="skip", status=status)
                    continue
                yield Work(item.name, None, sha256, kind="failed", error=error)
                continue
            source, sha256 = self._hashed(item.source, item.name, manifest)
            if manifest is not None and sha256 is not None:
                status = manifest.written_status(item.name, job, sha256)
                if status is not None and not self._retry(status):
                    yield Work(item.name, None, sha256, kind="skip", status=status)
                    continue
                if status is not None:  # retried: its failed pages are read again
                    manifest.forget_failed_pages(sha256, job)
                earlier = manifest.written_content(sha256, job, successful=self.retry_failed)
                if sha256 in seen or earlier is not None:
                    manifest.start(item.name, sha256, job)
                    yield Work(item.name, None, sha256, kind="alias")
                    continue
                seen.add(sha256)
                manifest.start(item.name, sha256, job)
                yield Work(item.name, source, sha256, manifest.finished_pages(sha256, job))
            else:
                yield Work(item.name, source, sha256)

    def _retry(self, status: str) -> bool:
        """Whether a file recorded with ``status`` is converted again (``retry_failed``)."""
        return self.retry_failed and status != "success"

    @staticmethod
    def _hashed(source: Source, name: str, manifest: Manifest | None) -> tuple[Source, str | None]:
        """The source to read (archive members as named buffers) and its content hash."""
        if isinstance(source, bytes):
            member = io.BytesIO(source)
            member.name = name
            return member, content_hash(source)
        if isinstance(source, str | Path):
            path = Path(source)
            if not path.is_file():
                return source, None
            known = manifest.known_hash(path) if manifest is not None else None
            if known is None:
                known = content_hash(path)
                if manifest is not None:
                    manifest.remember_hash(path, known)
            return source, known
        if isinstance(source, io.BufferedIOBase | io.BytesIO):
            stream = seekable(source)
            return stream, content_hash(stream)
        return source, None

    def _handle(
        self,
        item: Finished,
        opened: dict[int, _Open],
        waiting: dict[str, list[Work]],
        ended: dict[str, str | None],
        manifest: Manifest | None,
        job: str,
    ) -> Iterator[tuple[Document, str | None]]:
        """Documents completed by one stage output, with the error that stopped each."""
        work = item.work
        if work.kind == "skip":
            self._counts.skipped += 1
            self._counts.skipped_bad += work.status != "success"
            if self.observer:
                recorded = Document.model_validate(
                    {"source": work.name, "sha256": work.sha256, "status": work.status}
                )
                self.observer.document(recorded, skipped=True, pages=0)
            return
        if work.kind == "failed":
            yield build_document(work.name, [], sha256=work.sha256, error=work.error), work.error
            return
        if work.kind == "alias":
            assert work.sha256 is not None
            # read in this run: wait for it; else written by an earlier run (its pages and
            # status are in the manifest), even when that name is skipped now
            if work.sha256 in ended or manifest is None or work.sha256 not in self._reading:
                yield self._alias(work, manifest, job, ended), ended.get(work.sha256)
            else:
                waiting.setdefault(work.sha256, []).append(work)
            return
        state = opened.setdefault(id(work), _Open())
        page = item.finished_page()
        if page is not None:
            state.pages[page.number] = page
            if manifest is not None and work.sha256 is not None:
                manifest.record_page(work.sha256, job, page)
        if item.end:
            state.expected, state.error, state.order = item.count, item.error, item.order
        if state.expected is None or len(state.pages) < state.expected:
            return
        del opened[id(work)]
        self._counts.pages_reused += len(work.finished)
        pages = [*work.finished.values(), *state.pages.values()]
        rank = {n: i for i, n in enumerate(state.order)}  # the selection's order ("4,2")
        pages.sort(key=lambda p: (rank.get(p.number, len(rank)), p.number))
        document = build_document(work.name, pages, sha256=work.sha256, error=state.error)
        yield document, state.error
        if work.sha256 is not None:
            ended[work.sha256] = state.error
            for alias in waiting.pop(work.sha256, []):
                yield renamed(document, alias.name), state.error

    def _alias(
        self, work: Work, manifest: Manifest | None, job: str, ended: dict[str, str | None]
    ) -> Document:
        """The document of bytes read before under another name, rebuilt from the manifest."""
        assert manifest is not None and work.sha256 is not None
        if work.sha256 in ended:
            stop = ended[work.sha256]
        else:
            found = manifest.written_content(work.sha256, job)
            stop = found[1] if found else None
        pages = list(manifest.finished_pages(work.sha256, job).values())
        document = build_document(work.name, pages, sha256=work.sha256, error=stop)
        return renamed(document, work.name)  # the stored pages name the first source

    def _count(self, document: Document, stages: Stages) -> None:
        counts = self._counts
        counts.done += document.status == "success"
        counts.partial += document.status == "partial"
        counts.failed += document.status == "failure"
        counts.pages_done += sum(1 for p in document.pages if p.status != "error")
        counts.pages_failed += sum(1 for p in document.pages if p.status == "error")
        if self.observer:
            self.observer.document(document, skipped=False, pages=len(document.pages))
        finished = counts.done + counts.partial + counts.failed
        bad = counts.partial + counts.failed
        if (
            self.max_error_rate is not None
            and finished >= MIN_FILES_FOR_RATE
            and bad / finished > self.max_error_rate
        ):
            self._stopped = True
            self._error_rate = bad / finished
            stages.stop_feeding.set()

    def _finish(self, stages: Stages) -> None:
        counts = self._counts
        seconds = time.perf_counter() - stages.started
        pages = counts.pages_done + counts.pages_failed - counts.pages_reused
        bad = counts.partial + counts.failed + counts.skipped_bad
        code = ExitCode.STOPPED if self._stopped else ExitCode.FAILED if bad else ExitCode.OK
        self.summary = Summary(
            files_done=counts.done,
            files_partial=counts.partial,
            files_failed=counts.failed,
            files_skipped=counts.skipped,
            files_ignored=counts.ignored,
            pages_done=counts.pages_done,
            pages_failed=counts.pages_failed,
            pages_reused=counts.pages_reused,
            seconds=round(seconds, 3),
            load_seconds=round(counts.load_seconds, 3),
            pages_per_second=round(max(pages, 0) / seconds, 3) if seconds > 0 else 0.0,
            engine_busy=round(min(1.0, stages.engine_seconds / seconds), 3) if seconds else 0.0,
            stopped=self._stopped,
            error_rate=None if self._error_rate is None else round(self._error_rate, 4),
            max_error_rate=self.max_error_rate if self._stopped else None,
            files_failed_earlier=counts.skipped_bad,
            exit_code=code,
        )
        if self.observer:
            self.observer.finished(self.summary)


def run_job(
    models: ModelPool | HasModels,
    sources: Iterable[Source],
    options: Options,
    destination: str | Path | Output | None = None,
    *,
    redo: bool = False,
    max_error_rate: float | None = None,
    observer: Observer | None = None,
    on_document: Callable[[Document], None] | None = None,
    retry_failed: bool = False,
    wait: bool = False,
) -> Summary:
    """Run a whole job (what ``docvlm convert`` does) and return its summary; ``models`` is
    a model pool or a ``DocVLM`` client (its pool is used).

    ``retry_failed`` converts again the files recorded as failed or partial (their new
    record replaces the old one in the sink); ``wait`` waits for another run writing the
    same destination instead of raising ``DestinationBusyError``."""
    run = Run(
        models,
        options,
        destination,
        redo=redo,
        max_error_rate=max_error_rate,
        observer=observer,
        retry_failed=retry_failed,
        wait=wait,
    )
    for document in run.documents(sources):
        if on_document is not None:
            on_document(document)
    assert run.summary is not None
    return run.summary
