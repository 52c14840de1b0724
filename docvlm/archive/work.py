"""What flows through an archive run: the works fed in, the plans that reach the engine,
what comes out (``Finished``), and the run's options.

Plain data, shared by the local stages (``docvlm.archive.pipeline``) and the Ray Data
stages (``docvlm.distributed``), so that both write the same records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from docvlm.reading.assemble import make_page
from docvlm.reading.pages import Regions
from docvlm.reading.reads import Read, finish_reads
from docvlm.reading.render import Backend, PageImage, PageSelection, Source
from docvlm.reading.requests import Generation, Request
from docvlm.reading.turn import Turn
from docvlm.results import Page
from docvlm.tasks import TaskName

__all__ = ["Finished", "Options", "Plan", "Work", "finish_plan"]


@dataclass
class Work:
    """One entry of a run. ``kind`` says what to do: ``read`` the source (``finished``
    holds pages a previous run already read); record it as ``failed`` with ``error``;
    ``alias``: the same bytes under another name, read once; ``skip``: already written
    (``status`` is what was recorded)."""

    name: str
    source: Source | None
    sha256: str | None
    finished: dict[int, Page] = field(default_factory=dict)
    kind: Literal["read", "failed", "alias", "skip"] = "read"
    error: str | None = None
    status: str | None = None


@dataclass
class Plan:
    """A rendered page with its reads and requests, ready for the engine."""

    work: Work
    page: PageImage | None  # kept only for layout mode (regions are cut after the engine)
    number: int
    size: tuple[int, int]
    dpi: float | None
    warnings: tuple[str, ...]
    reads: list[Read]
    requests: list[Request]
    turn: Turn | None = None  # how the page was turned to be read (sizes are the read image's)


@dataclass
class Finished:
    """Stage output: a page done (``page``, or a ``plan`` with the engine's ``outputs``), or
    the end of a work's rendering (``count`` pages were sent on; ``error`` stopped it;
    ``order`` the page numbers in the selection's order)."""

    work: Work
    page: Page | None = None
    count: int = 0
    error: str | None = None
    end: bool = False
    plan: Plan | None = None
    outputs: Sequence[Generation | str] = ()
    order: tuple[int, ...] = ()  # at the end: the page numbers in the order they were read

    def finished_page(self) -> Page | None:
        """The page this reports, parsed from the generations when it came from the engine."""
        if self.plan is not None:
            return finish_plan(self.plan, self.outputs)
        return self.page


@dataclass
class Options:
    """What a run reads, and how (the ``convert`` options; ``passwords`` by file name)."""

    tasks: Sequence[TaskName]
    pages: PageSelection = None
    password: str | None = None
    dpi: int = 150
    max_new_tokens: int | None = None
    question: str | None = None
    layout: bool = False
    regions: Regions | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    render_workers: int = 2
    retries: int = 2
    backend: Backend = "pypdfium2"
    passwords: Mapping[str, str] = field(default_factory=dict)  # by name: docvlm.archive.passwords
    formats: Sequence[str] | None = None  # an output folder's files (docvlm.formats.files)
    orient: bool = True  # pages read turned upright and straightened (docvlm.reading.upright)


def finish_plan(plan: Plan, outputs: Sequence[Generation | str]) -> Page:
    """The Page of a plan from its generations (parsed here, off the generation thread)."""
    failed = [o for o in outputs if isinstance(o, str)]
    width, height = plan.size if plan.turn is None else plan.turn.page_size
    if failed:
        return Page(
            number=plan.number,
            width=width,
            height=height,
            dpi=plan.dpi,
            status="error",
            error=failed[0],
            warnings=plan.warnings,
        )
    generations = [o for o in outputs if isinstance(o, Generation)]
    results = finish_reads(plan.work.name, plan.number, plan.reads, generations)
    return make_page(plan.number, plan.size, plan.dpi, results, plan.warnings, plan.turn)
