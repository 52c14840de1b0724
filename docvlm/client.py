"""``DocVLM``: the client that keeps models loaded and runs the pipeline.

    source -> pages -> regions (whole page, or layout regions) -> crops (tiles for text)
           -> requests -> engine -> parsers -> results (page pixels) -> Page / Document

The whole path reads in ``_read_pages``; each stage is a plain function elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from docvlm.assemble import clip, make_page
from docvlm.engines import Engine, EngineFactory, Generation, Request, load_engine
from docvlm.errors import CheckpointNotConfiguredError, InputError
from docvlm.pdf import InProcessPdf, PdfReader, RenderWorker
from docvlm.reads import finish_reads, plan_reads
from docvlm.records import build_document
from docvlm.regions import reading_order
from docvlm.render import (
    Backend,
    PageFailure,
    PageImage,
    PageSelection,
    Source,
    load_pages,
    source_name,
)
from docvlm.results import (
    AnswerResult,
    CaptionResult,
    Document,
    LayoutResult,
    MoleculeResult,
    MusicResult,
    Page,
    Result,
    ResultBase,
    TableResult,
    TextResult,
)
from docvlm.settings import Settings
from docvlm.tasks import TaskName
from parsers import Box, Detection

__all__ = ["LABEL_TASKS", "DocVLM", "Regions"]

R = TypeVar("R", bound=ResultBase)
#: Which task reads a region of each layout label.
LABEL_TASKS: Mapping[str, TaskName] = MappingProxyType(
    {
        "table": "table",
        "molecule": "molecule",
        "music": "music",
        "text": "text",
        "figure": "caption",
    }
)
#: Regions from the caller's own detector: per page number, or a function of the page.
Regions = Mapping[int, Sequence[Detection]] | Callable[[PageImage], Sequence[Detection]]


class DocVLM:
    """Reads documents with PaliGemma 2; models load on first use and stay loaded.

    ``checkpoint`` overrides every task's checkpoint (handy with one fine-tuned model);
    ``engine_factory`` builds an engine from a checkpoint (by default ``load_engine``:
    docvlm's engine on CUDA, transformers' ``generate`` on the CPU; see ``Settings.engine``).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        checkpoint: str | None = None,
        engine_factory: EngineFactory = load_engine,
        backend: Backend = "pypdfium2",
    ) -> None:
        self.settings = settings or Settings()
        self._override = checkpoint
        self._factory = engine_factory
        self._backend = backend
        self._engines: dict[str, Engine] = {}
        self._worker: RenderWorker | None = None

    # --- models ----------------------------------------------------------------------

    def checkpoint_for(self, task: TaskName) -> str:
        """The checkpoint ``task`` runs on; raises when none is set and none is public."""
        checkpoint = self._override or self.settings.checkpoint_for(task)
        if checkpoint is None:
            raise CheckpointNotConfiguredError(
                f"no public checkpoint reads the {task!r} task: set "
                f"DOCVLM_{task.upper()}_CHECKPOINT or pass --checkpoint (a hub id or directory); "
                "`docvlm finetune` makes one from a google/paligemma2-*-pt checkpoint"
            )
        return checkpoint

    def engine(self, task: TaskName) -> Engine:
        """The loaded engine for ``task`` (loaded once per checkpoint)."""
        checkpoint = self.checkpoint_for(task)
        if checkpoint not in self._engines:
            self._engines[checkpoint] = self._factory(checkpoint, self.settings)
        return self._engines[checkpoint]

    def close(self) -> None:
        """Drop the loaded models and stop the render worker."""
        self._engines.clear()
        if self._worker is not None:
            self._worker.shutdown()
            self._worker = None

    def __enter__(self) -> DocVLM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _reader(self) -> PdfReader:
        if self.settings.render_timeout is None:
            return InProcessPdf()
        if self._worker is None:
            self._worker = RenderWorker(self.settings.render_timeout)
        return self._worker

    # --- one task --------------------------------------------------------------------

    def read_text(self, source: Source, **options: object) -> list[TextResult]:
        """Text of each selected page (OCR over overlapping tiles, merged)."""
        return self._single(source, "text", TextResult, **options)

    def read_table(self, source: Source, **options: object) -> list[TableResult]:
        """A table from each selected page (a table crop, or a page holding one table)."""
        return self._single(source, "table", TableResult, **options)

    def read_molecule(self, source: Source, **options: object) -> list[MoleculeResult]:
        """A chemical structure from each selected page or image."""
        return self._single(source, "molecule", MoleculeResult, **options)

    def read_music(self, source: Source, **options: object) -> list[MusicResult]:
        """A score from each selected page or image."""
        return self._single(source, "music", MusicResult, **options)

    def detect_layout(self, source: Source, **options: object) -> list[LayoutResult]:
        """Table, molecule, music, text and figure regions of each selected page."""
        return self._single(source, "layout", LayoutResult, **options)

    def caption(self, source: Source, **options: object) -> list[CaptionResult]:
        """A description of each selected page or image."""
        return self._single(source, "caption", CaptionResult, **options)

    def ask(self, source: Source, question: str, **options: object) -> list[AnswerResult]:
        """The answer to ``question`` for each selected page."""
        return self._single(source, "ask", AnswerResult, question=question, **options)

    def _single(self, source: Source, task: TaskName, kind: type[R], **options: object) -> list[R]:
        pages = list(self.iter_pages(source, (task,), **options))  # type: ignore[arg-type]
        return [r for page in pages for r in page.results if isinstance(r, kind)]

    # --- documents -------------------------------------------------------------------

    def convert(
        self,
        source: Source,
        *,
        tasks: Sequence[TaskName] = ("text",),
        pages: PageSelection = None,
        password: str | None = None,
        dpi: int | None = None,
        max_new_tokens: int | None = None,
        question: str | None = None,
        layout: bool = False,
        regions: Regions | None = None,
    ) -> Document:
        """Run ``tasks`` on every selected page. Input errors are data: the document says
        ``failure`` (nothing read) or ``partial`` (some pages failed).

        With ``layout=True`` the layout task finds regions first and each region is read
        by the task of its label (``LABEL_TASKS``) when that task is in ``tasks``; pass
        ``regions`` to use your own detector instead.
        """
        name = source_name(source)
        if "ask" in tasks and not question:
            raise ValueError("the 'ask' task needs a question")
        for task in (*tasks, *(("layout",) if layout and regions is None else ())):
            self.checkpoint_for(task)  # configuration errors are raised, not recorded
        done: list[Page] = []
        try:
            for page in self.iter_pages(
                source,
                tasks,
                pages=pages,
                password=password,
                dpi=dpi,
                max_new_tokens=max_new_tokens,
                question=question,
                layout=layout,
                regions=regions,
                strict=False,
            ):
                done.append(page)
        except InputError as error:
            return build_document(name, done, error=error.reason)
        return build_document(name, done)

    def convert_many(
        self,
        sources: Iterable[Source],
        *,
        tasks: Sequence[TaskName] = ("text",),
        pages: PageSelection = None,
        password: str | None = None,
        dpi: int | None = None,
        max_new_tokens: int | None = None,
        question: str | None = None,
        layout: bool = False,
        regions: Regions | None = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        out: str | Path | None = None,
        redo: bool = False,
    ) -> Iterator[Document]:
        """``convert`` every document behind ``sources`` (folders and zip/tar archives are
        expanded; in folders, ``include``/``exclude`` globs choose files), yielding each
        Document as it finishes; a bad one is a failed Document and the batch goes on.

        Rendering runs ahead in worker processes and the engine gets one stream of
        requests across pages and documents (``docvlm.runner``); memory stays flat. With
        ``out`` (``.jsonl``, ``.parquet``, ``NAME.parquet/`` or ``DIR/``) each Document is
        also written there, and a rerun into the same ``out`` skips what is done and
        redoes what was in flight (``redo=True`` starts over).
        """
        from docvlm.pipeline import Options
        from docvlm.runner import Run

        if "ask" in tasks and not question:
            raise ValueError("the 'ask' task needs a question")
        options = Options(
            tasks=tuple(tasks),
            pages=pages,
            password=password,
            dpi=dpi or self.settings.dpi,
            max_new_tokens=max_new_tokens,
            question=question,
            layout=layout,
            regions=regions,
            include=tuple(include),
            exclude=tuple(exclude),
        )
        yield from Run(self, options, out, redo=redo).documents(sources)

    def iter_pages(
        self,
        source: Source,
        tasks: Sequence[TaskName],
        *,
        pages: PageSelection = None,
        password: str | None = None,
        dpi: int | None = None,
        max_new_tokens: int | None = None,
        question: str | None = None,
        layout: bool = False,
        regions: Regions | None = None,
        strict: bool = True,
    ) -> Iterator[Page]:
        """Pages with their results, rendered and read a batch of pages at a time.

        Raises ``InputError`` (naming the source and page) on unreadable input; with
        ``strict=False`` a page that fails to render is a ``Page`` with status ``error``.
        """
        stream = load_pages(
            source,
            pages=pages,
            password=password,
            dpi=dpi or self.settings.dpi,
            backend=self._backend,
            limits=self.settings.limits(),
            reader=self._reader(),
        )
        detector = regions if regions is not None else ("model" if layout else None)
        batch: list[PageImage] = []
        for item in stream:
            if isinstance(item, PageFailure):
                if strict:
                    raise item.error
                yield from self._read_pages(batch, tasks, max_new_tokens, question, detector)
                batch = []
                yield Page(number=item.number, status="error", error=item.error.reason)
                continue
            batch.append(item)
            if len(batch) >= self.settings.batch_size:
                yield from self._read_pages(batch, tasks, max_new_tokens, question, detector)
                batch = []
        yield from self._read_pages(batch, tasks, max_new_tokens, question, detector)

    def _read_pages(
        self,
        pages: list[PageImage],
        tasks: Sequence[TaskName],
        max_new_tokens: int | None,
        question: str | None,
        detector: Regions | str | None,
    ) -> list[Page]:
        if not pages:
            return []
        whole = [[Box(x0=0, y0=0, x1=p.image.width, y1=p.image.height)] for p in pages]
        per_page: list[list[Result]] = [[] for _ in pages]
        if detector is None:
            for task in tasks:
                found = self._run(task, pages, whole, max_new_tokens, question)
                for index, results in enumerate(found):
                    per_page[index].extend(results)
        else:
            plans = self._plan(pages, tasks, whole, max_new_tokens, detector, per_page)
            for index, results in enumerate(
                self._read_plans(pages, plans, max_new_tokens, question)
            ):
                per_page[index].extend(results)
        return [
            make_page(page.number, page.image.size, page.dpi, results, page.warnings)
            for page, results in zip(pages, per_page, strict=True)
        ]

    def _plan(
        self,
        pages: list[PageImage],
        tasks: Sequence[TaskName],
        whole: list[list[Box]],
        max_new_tokens: int | None,
        detector: Regions | str,
        per_page: list[list[Result]],
    ) -> list[list[tuple[TaskName, Box]]]:
        """Per page, the (task, region) pairs to read, in reading order."""
        if detector == "model":
            found = self._run("layout", pages, whole, max_new_tokens, None)
            detections: list[Sequence[Detection]] = []
            for index, results in enumerate(found):
                per_page[index].extend(results)
                detections.append(
                    [d for r in results if isinstance(r, LayoutResult) for d in r.regions]
                )
        elif callable(detector):
            detections = [detector(page) for page in pages]
        else:
            assert isinstance(detector, Mapping)
            detections = [detector.get(page.number, ()) for page in pages]
        plans = []
        for page, found_here in zip(pages, detections, strict=True):
            jobs = [
                (LABEL_TASKS[d.label.lower()], clip(d.box, page))
                for d in found_here
                if LABEL_TASKS.get(d.label.lower()) in tasks and clip(d.box, page).area > 0
            ]
            if not jobs and "text" in tasks:
                jobs = [("text", Box(x0=0, y0=0, x1=page.image.width, y1=page.image.height))]
            order = reading_order([box for _, box in jobs], page.image.width)
            plans.append([jobs[i] for i in order])
        return plans

    def _read_plans(
        self,
        pages: list[PageImage],
        plans: list[list[tuple[TaskName, Box]]],
        max_new_tokens: int | None,
        question: str | None,
    ) -> list[list[Result]]:
        """Each page's planned regions read by their tasks, all pages of the batch together
        per task, returned in each plan's (reading) order."""
        slots: list[list[Result | None]] = [[None] * len(plan) for plan in plans]
        for task in dict.fromkeys(task for plan in plans for task, _ in plan):
            boxes = [[box for t, box in plan if t == task] for plan in plans]
            found = self._run(task, pages, boxes, max_new_tokens, question)
            for plan, page_slots, results in zip(plans, slots, found, strict=True):
                places = [i for i, (t, _) in enumerate(plan) if t == task]
                for place, result in zip(places, results, strict=True):
                    page_slots[place] = result
        return [[r for r in page_slots if r is not None] for page_slots in slots]

    def _run(
        self,
        task: TaskName,
        pages: list[PageImage],
        regions: list[list[Box]],
        max_new_tokens: int | None,
        question: str | None,
    ) -> list[list[Result]]:
        """One result per region of each page, all crops of the batch generated together."""
        planned = [
            plan_reads(page, [(task, box) for box in boxes], self.engine, max_new_tokens, question)
            for page, boxes in zip(pages, regions, strict=True)
        ]
        outputs = iter(self._generate(self.engine(task), [r for _, rs in planned for r in rs]))
        return [
            finish_reads(page.source, page.number, reads, [next(outputs) for _ in requests])
            for page, (reads, requests) in zip(pages, planned, strict=True)
        ]

    def _generate(self, engine: Engine, requests: list[Request]) -> list[Generation]:
        """All requests in one stream: the engine batches them itself (docvlm's engine
        refills a finished slot with the next request at once)."""
        return engine.generate(requests) if requests else []
