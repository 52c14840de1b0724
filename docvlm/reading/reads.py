"""One page's reads, in two halves around the engine: ``plan_reads`` cuts the crops and
writes the requests; ``finish_reads`` parses what the engine wrote back into results.

Keeping the halves apart lets a runner prepare requests ahead, in its render threads, and
parse off the generation thread; the client calls both around one ``generate``.

Crops with no ink (``docvlm.reading.ink``) cost no request: a blank tile of a page is skipped (its
part of the region reads as empty), and a region with no ink at all is recorded as read,
empty, with ``stop="blank"`` (``make_page`` says so in the page's warnings).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from docvlm.reading.assemble import merge_tiles
from docvlm.reading.confidence import TokenSpans
from docvlm.reading.ink import InkMap
from docvlm.reading.regions import Crop, crop_square, tile_boxes
from docvlm.reading.render import PageImage
from docvlm.reading.requests import Engine, Generation, Request
from docvlm.results import RESULT_TYPES, Result
from docvlm.tasks import TASKS, TaskName
from parsers import Box

__all__ = ["TILE_OVERLAP", "Read", "finish_reads", "page_crops", "plan_reads"]

#: Overlap between neighbouring text tiles, in page pixels: more than a line is tall, so a
#: line cut horizontally by one tile is whole in the other (long lines cut vertically are
#: joined from their fragments, see ``merge_tile_lines``).
TILE_OVERLAP = 96


@dataclass(frozen=True)
class Read:
    """One region read by one task: where its crops sit on the page, and by which model."""

    task: TaskName
    region: Box
    frames: tuple[Box, ...]  # each requested crop's square on the page (inked crops only)
    boxes: tuple[Box, ...]  # each requested crop's region on the page
    prompt: str
    checkpoint: str


def page_crops(
    page: PageImage, region: Box, mode: str, resolution: int, ink: InkMap | None = None
) -> list[Crop]:
    """Square crops of ``region``: overlapping tiles of the model's size, or the region;
    with an ``ink`` map of the page, only the crops that hold ink."""
    if mode == "tiles":
        tiles = tile_boxes(
            int(region.width), int(region.height), resolution, min(TILE_OVERLAP, resolution // 4)
        )
        boxes = [t.shift(region.x0, region.y0) for t in tiles]
    else:
        boxes = [region]
    return [crop_square(page.image, box) for box in boxes if ink is None or ink.has_ink(box)]


def plan_reads(
    page: PageImage,
    jobs: Sequence[tuple[TaskName, Box]],
    engine_for: Callable[[TaskName], Engine],
    max_new_tokens: int | None,
    question: str | None,
    ink: InkMap | None = None,
) -> tuple[list[Read], list[Request]]:
    """The reads of ``jobs`` (task, region) on ``page`` and their requests, in order; crops
    without ink get no request (a read whose every crop is blank has none). ``ink`` is the
    page's ink map when the caller already measured it (one per page, however many tasks)."""
    reads: list[Read] = []
    requests: list[Request] = []
    if ink is None and jobs:
        ink = InkMap.of(page.image)
    for task, region in jobs:
        spec = TASKS[task]
        engine = engine_for(task)
        prompt = spec.render_prompt(question if task == "ask" else None)
        budget = max_new_tokens or spec.max_new_tokens
        crops = page_crops(page, region, spec.region, engine.resolution, ink)
        reads.append(
            Read(
                task,
                region,
                tuple(c.frame for c in crops),
                tuple(c.region for c in crops),
                prompt,
                engine.checkpoint,
            )
        )
        requests.extend(Request(c.image, prompt, budget) for c in crops)
    return reads, requests


def finish_reads(
    source: str, number: int, reads: Sequence[Read], generations: Sequence[Generation]
) -> list[Result]:
    """One result per read, parsed from its crops' generations (tiles merged); a read with
    no crop (no ink in its region) is an empty result with ``stop="blank"``."""
    outputs = iter(generations)
    results: list[Result] = []
    for read in reads:
        if not read.frames:
            results.append(_blank(source, number, read))
            continue
        parsed = [
            cast(
                Result,
                RESULT_TYPES[read.task].from_output(
                    generation.text,
                    frame,
                    TokenSpans(generation).score,  # each line's or cell's confidence
                    source=source,
                    page=number,
                    box=box,
                    checkpoint=read.checkpoint,
                    prompt=read.prompt,
                    confidence=generation.confidence,
                    stop=generation.stop,
                ),
            )
            for frame, box, generation in zip(
                read.frames, read.boxes, [next(outputs) for _ in read.frames], strict=True
            )
        ]
        results.append(merge_tiles(parsed, read.region) if len(parsed) > 1 else parsed[0])
    return results


def _blank(source: str, number: int, read: Read) -> Result:
    """The result of a region with no ink: read as empty, without a model call."""
    empty = RESULT_TYPES[read.task](
        task=read.task,
        source=source,
        page=number,
        box=read.region,
        checkpoint=read.checkpoint,
        prompt=read.prompt,
        raw="",
        stop="blank",
    )
    return cast(Result, empty)
