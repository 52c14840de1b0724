"""``DocVLM``: the client that keeps models loaded and runs the pipeline.

    source -> pages -> regions (tiles or a padded page) -> requests -> engine -> parsers
           -> results (page pixels) -> Page / Document

The whole path reads in ``_read_pages``; each stage is a plain function elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar, cast

from docvlm.engines import Engine, EngineFactory, Generation, Request, load_transformers_engine
from docvlm.errors import CheckpointNotConfiguredError, InputError
from docvlm.regions import Crop, crop_square, merge_tile_lines, tile_boxes
from docvlm.render import Backend, PageImage, PageSelection, Source, load_pages, source_name
from docvlm.results import (
    RESULT_TYPES,
    AnswerResult,
    CaptionResult,
    Document,
    LayoutResult,
    MoleculeResult,
    MusicResult,
    Page,
    PageStatus,
    Result,
    ResultBase,
    TableResult,
    TextResult,
)
from docvlm.settings import Settings
from docvlm.tasks import TASKS, TaskName
from parsers import Box

__all__ = ["DocVLM"]

R = TypeVar("R", bound=ResultBase)
#: Overlap between neighbouring text tiles, in page pixels: a line cut by one tile's edge
#: is whole in the other.
TILE_OVERLAP = 96


class DocVLM:
    """Reads documents with PaliGemma 2; models load on first use and stay loaded.

    ``checkpoint`` overrides every task's checkpoint (handy with one fine-tuned model);
    ``engine_factory`` builds an engine from a checkpoint (the transformers one by default).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        checkpoint: str | None = None,
        engine_factory: EngineFactory = load_transformers_engine,
        backend: Backend = "pypdfium2",
    ) -> None:
        self.settings = settings or Settings()
        self._override = checkpoint
        self._factory = engine_factory
        self._backend = backend
        self._engines: dict[str, Engine] = {}

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
        """Drop the loaded models."""
        self._engines.clear()

    def __enter__(self) -> DocVLM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
        results = [r for page in pages for r in page.results]
        return [r for r in results if isinstance(r, kind)]

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
    ) -> Document:
        """Run ``tasks`` on every selected page. Input errors are data: the returned
        document says ``failure`` (nothing read) or ``partial`` (some pages failed)."""
        name = source_name(source)
        for task in tasks:
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
            ):
                done.append(page)
        except InputError as error:
            failed = (
                Page(number=error.page, status="error", error=error.reason) if error.page else None
            )
            if failed:
                done.append(failed)
            status = "partial" if any(p.status != "error" for p in done) else "failure"
            return Document(
                source=name,
                status=status,
                error=None if failed else error.reason,
                pages=tuple(done),
            )
        return Document(source=name, status="success", pages=tuple(done))

    def convert_many(self, sources: Iterable[Source], **options: object) -> Iterator[Document]:
        """``convert`` each source in turn; a bad source never stops the batch."""
        for source in sources:
            yield self.convert(source, **options)  # type: ignore[arg-type]

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
    ) -> Iterator[Page]:
        """Pages with their results, rendered and read a batch of pages at a time.

        Raises ``InputError`` (naming the source and page) on unreadable input.
        """
        stream = load_pages(
            source,
            pages=pages,
            password=password,
            dpi=dpi or self.settings.dpi,
            backend=self._backend,
        )
        batch: list[PageImage] = []
        for page in stream:
            batch.append(page)
            if len(batch) >= self.settings.batch_size:
                yield from self._read_pages(batch, tasks, max_new_tokens, question)
                batch = []
        if batch:
            yield from self._read_pages(batch, tasks, max_new_tokens, question)

    def _read_pages(
        self,
        pages: list[PageImage],
        tasks: Sequence[TaskName],
        max_new_tokens: int | None,
        question: str | None,
    ) -> list[Page]:
        per_page: list[list[Result]] = [[] for _ in pages]
        for task in tasks:
            spec = TASKS[task]
            engine = self.engine(task)
            prompt = spec.render_prompt(question)
            budget = max_new_tokens or spec.max_new_tokens
            crops = [self._regions(page, spec.region, engine.resolution) for page in pages]
            requests = [
                Request(c.image, prompt, budget) for page_crops in crops for c in page_crops
            ]
            outputs = iter(self._generate(engine, requests))
            for index, (page, page_crops) in enumerate(zip(pages, crops, strict=True)):
                parsed = [
                    cast(
                        Result,
                        RESULT_TYPES[task].from_output(
                            next(outputs).text,
                            crop.frame,
                            source=page.source,
                            page=page.number,
                            box=crop.region,
                            checkpoint=engine.checkpoint,
                            prompt=prompt,
                        ),
                    )
                    for crop in page_crops
                ]
                per_page[index].extend(
                    _merge_tiles(parsed, page) if spec.region == "tiles" else parsed
                )
        return [
            Page(
                number=page.number,
                width=page.image.width,
                height=page.image.height,
                dpi=page.dpi,
                status=_page_status(results),
                results=tuple(results),
            )
            for page, results in zip(pages, per_page, strict=True)
        ]

    def _regions(self, page: PageImage, region: str, resolution: int) -> list[Crop]:
        width, height = page.image.size
        if region == "tiles":
            boxes = tile_boxes(width, height, resolution, min(TILE_OVERLAP, resolution // 4))
        else:
            boxes = [Box(x0=0, y0=0, x1=width, y1=height)]
        return [crop_square(page.image, box) for box in boxes]

    def _generate(self, engine: Engine, requests: list[Request]) -> list[Generation]:
        size = self.settings.batch_size
        out: list[Generation] = []
        for start in range(0, len(requests), size):
            out.extend(engine.generate(requests[start : start + size]))
        return out


def _merge_tiles(parsed: list[Result], page: PageImage) -> list[Result]:
    texts = [r for r in parsed if isinstance(r, TextResult)]
    if len(texts) <= 1:
        return parsed
    lines = merge_tile_lines([r.box for r in texts], [r.lines for r in texts])
    failed = [r for r in texts if r.status != "ok"]
    first = texts[0]
    return [
        TextResult(
            source=first.source,
            page=first.page,
            checkpoint=first.checkpoint,
            prompt=first.prompt,
            box=Box(x0=0, y0=0, x1=page.image.width, y1=page.image.height),
            raw="\f".join(r.raw for r in texts),
            lines=tuple(lines),
            status="parse_error" if failed else "ok",
            error="; ".join(r.error or "" for r in failed) or None,
        )
    ]


def _page_status(results: list[Result]) -> PageStatus:
    return "parse_error" if any(r.status != "ok" for r in results) else "ok"
