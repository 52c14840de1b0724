"""The whole reading path of a batch of pages, in one place.

    pages -> regions (whole page, layout regions, or the caller's) -> crops (tiles for text)
          -> requests -> engine -> parsers -> results (page pixels) -> Page

The engine is reached only through ``engine_for(task)``, a function the caller gives (the
model pool's ``engine``), so this module never loads or imports a model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType

from docvlm.reading.assemble import clip, make_page
from docvlm.reading.ink import InkMap
from docvlm.reading.pdf import PdfReader
from docvlm.reading.reads import finish_reads, plan_reads
from docvlm.reading.regions import reading_order
from docvlm.reading.render import Backend, PageFailure, PageImage, PageSelection, Source, load_pages
from docvlm.reading.requests import Engine, Generation, Request
from docvlm.reading.upright import upright
from docvlm.results import LayoutResult, Page, Result
from docvlm.settings import Settings
from docvlm.tasks import TaskName
from parsers import Box, Detection

__all__ = ["LABEL_TASKS", "EngineFor", "Regions", "iter_pages", "read_pages"]

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
#: The loaded engine of a task (``ModelPool.engine``).
EngineFor = Callable[[TaskName], Engine]


def iter_pages(
    source: Source,
    tasks: Sequence[TaskName],
    engine_for: EngineFor,
    settings: Settings,
    reader: PdfReader,
    *,
    backend: Backend = "pypdfium2",
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
    """Pages with their results, rendered and read ``settings.batch_size`` pages at a time.

    Raises ``InputError`` (naming the source and page) on unreadable input; with
    ``strict=False`` a page that fails to render is a ``Page`` with status ``error``.
    """
    stream = load_pages(
        source,
        pages=pages,
        password=password,
        dpi=dpi or settings.dpi,
        backend=backend,
        limits=settings.limits(),
        reader=reader,
    )
    detector = regions if regions is not None else ("model" if layout else None)

    def read(batch: list[PageImage]) -> list[Page]:
        return read_pages(batch, tasks, engine_for, max_new_tokens, question, detector, orient)

    batch: list[PageImage] = []
    for item in stream:
        if isinstance(item, PageFailure):
            if strict:
                raise item.error
            yield from read(batch)
            batch = []
            yield Page(number=item.number, status="error", error=item.error.reason)
            continue
        batch.append(item)
        if len(batch) >= settings.batch_size:
            yield from read(batch)
            batch = []
    yield from read(batch)


def read_pages(
    pages: list[PageImage],
    tasks: Sequence[TaskName],
    engine_for: EngineFor,
    max_new_tokens: int | None,
    question: str | None,
    detector: Regions | str | None,
    orient: bool = True,
) -> list[Page]:
    """Each page read by ``tasks``: whole pages, or with a ``detector`` (``"model"`` for the
    layout task, or the caller's ``Regions``) each region by the task of its label.

    With ``orient`` each page is read turned upright and straightened where the measure is
    sure (``docvlm.reading.upright``); results are recorded in the page's own pixels. The
    caller's ``Regions`` are in those pixels too (a function of the page is given the
    page as read, so its boxes are in the read image)."""
    if not pages:
        return []
    pages = [upright(page, orient) for page in pages]
    whole = [[Box(x0=0, y0=0, x1=p.image.width, y1=p.image.height)] for p in pages]
    per_page: list[list[Result]] = [[] for _ in pages]
    inks = [InkMap.of(page.image) for page in pages]  # measured once, used by every task
    if detector is None:
        for task in tasks:
            found = _run(task, pages, inks, whole, engine_for, max_new_tokens, question)
            for index, results in enumerate(found):
                per_page[index].extend(results)
    else:
        plans = _plan(pages, inks, tasks, whole, engine_for, max_new_tokens, detector, per_page)
        for index, results in enumerate(
            _read_plans(pages, inks, plans, engine_for, max_new_tokens, question)
        ):
            per_page[index].extend(results)
    return [
        make_page(page.number, page.image.size, page.dpi, results, page.warnings, page.turn)
        for page, results in zip(pages, per_page, strict=True)
    ]


def _plan(
    pages: list[PageImage],
    inks: list[InkMap],
    tasks: Sequence[TaskName],
    whole: list[list[Box]],
    engine_for: EngineFor,
    max_new_tokens: int | None,
    detector: Regions | str,
    per_page: list[list[Result]],
) -> list[list[tuple[TaskName, Box]]]:
    """Per page, the (task, region) pairs to read, in reading order."""
    if detector == "model":
        found = _run("layout", pages, inks, whole, engine_for, max_new_tokens, None)
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
        detections = [[_to_read(d, page) for d in detector.get(page.number, ())] for page in pages]
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


def _to_read(detection: Detection, page: PageImage) -> Detection:
    """A caller's region (page pixels) in the image the page is read as."""
    if page.turn is None:
        return detection
    return detection.model_copy(update={"box": page.turn.to_read(detection.box)})


def _read_plans(
    pages: list[PageImage],
    inks: list[InkMap],
    plans: list[list[tuple[TaskName, Box]]],
    engine_for: EngineFor,
    max_new_tokens: int | None,
    question: str | None,
) -> list[list[Result]]:
    """Each page's planned regions read by their tasks, all pages of the batch together
    per task, returned in each plan's (reading) order."""
    slots: list[list[Result | None]] = [[None] * len(plan) for plan in plans]
    for task in dict.fromkeys(task for plan in plans for task, _ in plan):
        boxes = [[box for t, box in plan if t == task] for plan in plans]
        found = _run(task, pages, inks, boxes, engine_for, max_new_tokens, question)
        for plan, page_slots, results in zip(plans, slots, found, strict=True):
            places = [i for i, (t, _) in enumerate(plan) if t == task]
            for place, result in zip(places, results, strict=True):
                page_slots[place] = result
    return [[r for r in page_slots if r is not None] for page_slots in slots]


def _run(
    task: TaskName,
    pages: list[PageImage],
    inks: list[InkMap],
    regions: list[list[Box]],
    engine_for: EngineFor,
    max_new_tokens: int | None,
    question: str | None,
) -> list[list[Result]]:
    """One result per region of each page, all crops of the batch generated together."""
    planned = [
        plan_reads(page, [(task, b) for b in boxes], engine_for, max_new_tokens, question, ink)
        for page, ink, boxes in zip(pages, inks, regions, strict=True)
    ]
    outputs = iter(_generate(engine_for(task), [r for _, rs in planned for r in rs]))
    return [
        finish_reads(page.source, page.number, reads, [next(outputs) for _ in requests])
        for page, (reads, requests) in zip(pages, planned, strict=True)
    ]


def _generate(engine: Engine, requests: list[Request]) -> list[Generation]:
    """All requests in one stream: the engine batches them itself (docvlm's engine
    refills a finished slot with the next request at once)."""
    return engine.generate(requests) if requests else []
