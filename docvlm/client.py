"""``DocVLM``: the client that keeps models loaded, over the reading path and the runner.

    source -> pages -> regions (whole page, or layout regions) -> crops (tiles for text)
           -> requests -> engine -> parsers -> results (page pixels) -> Page / Document

The path itself reads in ``docvlm.reading.pages``; many documents go through the archive
runner (``docvlm.archive.runner``). The client owns the model pool both are given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from docvlm.document import Document
from docvlm.engines import EngineFactory, load_engine
from docvlm.engines.pool import ModelPool
from docvlm.reading.pages import LABEL_TASKS, Regions, iter_pages
from docvlm.reading.pdf import InProcessPdf, PdfReader, RenderWorker
from docvlm.reading.render import Backend, PageSelection, Source
from docvlm.reading.requests import Engine
from docvlm.results import (
    AnswerResult,
    CaptionResult,
    LayoutResult,
    MoleculeResult,
    MusicResult,
    Page,
    ResultBase,
    TableResult,
    TextResult,
)
from docvlm.settings import Settings
from docvlm.tasks import TaskName

if TYPE_CHECKING:
    from docvlm.archive.output import Output
    from docvlm.archive.pipeline import Options

__all__ = ["LABEL_TASKS", "DocVLM", "Regions"]

R = TypeVar("R", bound=ResultBase)


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
        self.models = ModelPool(self.settings, checkpoint=checkpoint, engine_factory=engine_factory)
        self.backend: Backend = backend
        self._worker: RenderWorker | None = None

    def __repr__(self) -> str:
        loaded = ", ".join(self.models.loaded) or "none yet"
        override = f", checkpoint={self.models.override!r}" if self.models.override else ""
        return (
            f"DocVLM(device={self.settings.device!r}, engine={self.settings.engine!r}"
            f"{override}, models loaded: {loaded})"
        )

    # --- models ----------------------------------------------------------------------

    def checkpoint_for(self, task: TaskName) -> str:
        """The checkpoint ``task`` runs on; raises when none is set and none is public."""
        return self.models.checkpoint_for(task)

    def engine(self, task: TaskName) -> Engine:
        """The loaded engine for ``task`` (loaded once per checkpoint)."""
        return self.models.engine(task)

    def close(self) -> None:
        """Drop the loaded models and stop the render worker."""
        self.models.close()
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

    def read_text(
        self,
        source: Source,
        *,
        pages: PageSelection = None,
        password: str | None = None,
        dpi: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[TextResult]:
        """Text of each selected page (OCR over overlapping tiles, merged)."""
        return self._single(source, "text", TextResult, pages, password, dpi, max_new_tokens)

    def read_table(
        self,
        source: Source,
        *,
        pages: PageSelection = None,
        password: str | None = None,
        dpi: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[TableResult]:
        """A table from each selected page (a table crop, or a page holding one table)."""
        return self._single(source, "table", TableResult, pages, password, dpi, max_new_tokens)

    def read_molecule(
        self,
        source: Source,
        *,
        pages: PageSelection = None,
        password: str | None = None,
        dpi: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[MoleculeResult]:
        """A chemical structure from each selected page or image."""
        return self._single(
            source, "molecule", MoleculeResult, pages, password, dpi, max_new_tokens
        )

    def read_music(
        self,
        source: Source,
        *,
        pages: PageSelection = None,
        password: str | None = None,
        dpi: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[MusicResult]:
        """A score from each selected page or image."""
        return self._single(source, "music", MusicResult, pages, password, dpi, max_new_tokens)

    def detect_layout(
        self,
        source: Source,
        *,
        pages: PageSelection = None,
        password: str | None = None,
        dpi: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[LayoutResult]:
        """Table, molecule, music, text and figure regions of each selected page."""
        return self._single(source, "layout", LayoutResult, pages, password, dpi, max_new_tokens)

    def caption(
        self,
        source: Source,
        *,
        pages: PageSelection = None,
        password: str | None = None,
        dpi: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[CaptionResult]:
        """A description of each selected page or image."""
        return self._single(source, "caption", CaptionResult, pages, password, dpi, max_new_tokens)

    def ask(
        self,
        source: Source,
        question: str,
        *,
        pages: PageSelection = None,
        password: str | None = None,
        dpi: int | None = None,
        max_new_tokens: int | None = None,
    ) -> list[AnswerResult]:
        """The answer to ``question`` for each selected page."""
        return self._single(
            source, "ask", AnswerResult, pages, password, dpi, max_new_tokens, question
        )

    def _single(
        self,
        source: Source,
        task: TaskName,
        kind: type[R],
        pages: PageSelection,
        password: str | None,
        dpi: int | None,
        max_new_tokens: int | None,
        question: str | None = None,
    ) -> list[R]:
        found = self.iter_pages(
            source,
            (task,),
            pages=pages,
            password=password,
            dpi=dpi,
            max_new_tokens=max_new_tokens,
            question=question,
        )
        return [r for page in found for r in page.results if isinstance(r, kind)]

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
        orient: bool = True,
        cancel: Callable[[], None] | None = None,
    ) -> Document:
        """Run ``tasks`` on every selected page: ``next(convert_many([source]))`` for one
        document (never expanded), so the engine retries, the batch halving on CUDA out of
        memory and the render-crash retries are the same. Input and engine errors are
        data: the document says ``failure`` (nothing read) or ``partial`` (some pages
        failed); the pages keep the selection's order (``pages="4,2"``).

        With ``layout=True`` the layout task finds regions first and each region is read
        by the task of its label (``LABEL_TASKS``) when that task is in ``tasks``; pass
        ``regions`` to use your own detector instead. Pages are read turned upright and
        straightened where their measure is sure; ``orient=False`` reads them as they lie.
        ``cancel``, when given, is called between pages and engine calls, on the run's
        threads; what it raises stops the conversion and is raised here.
        """
        from docvlm.archive.runner import Run

        options = self._options(tasks, pages, password, dpi, max_new_tokens, question, layout)
        options.regions, options.orient = regions, orient
        for task in (*tasks, *(("layout",) if layout and regions is None else ())):
            self.checkpoint_for(task)  # configuration errors are raised, not recorded
        run = Run(self.models, options, reader=self._reader(), cancel=cancel)
        return run.document(source)  # a one-item run: convert_many's retries and limits

    def _options(
        self,
        tasks: Sequence[TaskName],
        pages: PageSelection,
        password: str | None,
        dpi: int | None,
        max_new_tokens: int | None,
        question: str | None,
        layout: bool,
    ) -> Options:
        from docvlm.archive.pipeline import Options

        if "ask" in tasks and not question:
            raise ValueError("the 'ask' task needs a question")
        return Options(
            tasks=tuple(tasks),
            pages=pages,
            password=password,
            dpi=dpi or self.settings.dpi,
            max_new_tokens=max_new_tokens,
            question=question,
            layout=layout,
            backend=self.backend,
        )

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
        out: str | Path | Output | None = None,
        redo: bool = False,
        formats: Sequence[str] | None = None,
        orient: bool = True,
    ) -> Iterator[Document]:
        """``convert`` every document behind ``sources`` (folders and zip/tar archives are
        expanded; in folders, ``include``/``exclude`` globs choose files), yielding each
        Document as it finishes; a bad one is a failed Document and the batch goes on.

        Rendering runs ahead in worker processes and the engine gets one stream of
        requests across pages and documents (``docvlm.archive.runner``); memory stays flat. With
        ``out`` (``.jsonl``, ``.parquet``, ``NAME.parquet/`` or ``DIR/``) each Document is
        also written there, and a rerun into the same ``out`` skips what is done and
        redoes what was in flight (``redo=True`` starts over). ``formats`` (with an output
        folder ``out``) chooses the files each document's folder holds besides its record:
        ``md`` (the default), ``txt``, ``hocr``, ``alto``, ``page``, ``docling``, ``pdf``
        (``docvlm.formats.files``).
        """
        from docvlm.archive.runner import Run
        from docvlm.formats.files import parse_formats

        options = self._options(tasks, pages, password, dpi, max_new_tokens, question, layout)
        options.regions, options.include, options.exclude = regions, tuple(include), tuple(exclude)
        options.formats = None if formats is None else parse_formats(formats)
        options.orient = orient
        yield from Run(self.models, options, out, redo=redo).documents(sources)

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
        orient: bool = True,
    ) -> Iterator[Page]:
        """Pages with their results, rendered and read a batch of pages at a time.

        Raises ``InputError`` (naming the source and page) on unreadable input; with
        ``strict=False`` a page that fails to render is a ``Page`` with status ``error``.
        """
        yield from iter_pages(
            source,
            tasks,
            self.models.engine,
            self.settings,
            self._reader(),
            backend=self.backend,
            pages=pages,
            password=password,
            dpi=dpi,
            max_new_tokens=max_new_tokens,
            question=question,
            layout=layout,
            regions=regions,
            strict=strict,
            orient=orient,
        )
