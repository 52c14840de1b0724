"""What a batch holds, before converting it: type, pages and sizes, or the error.

``inspect_sources`` opens each document (folders and archives expanded) without
rendering a page; ``docvlm inspect`` prints it, one JSON record per file with ``--json``.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Iterator
from typing import Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from docvlm.errors import InputError
from docvlm.reading.pdf import InProcessPdf
from docvlm.reading.render import (
    PageImage,
    Source,
    head_bytes,
    image_error,
    load_pages,
    pdf_scale,
    read_source,
    rendered_size,
    sniff,
)
from docvlm.reading.sources import expand_sources
from docvlm.reading.upright import upright
from docvlm.settings import Limits

__all__ = ["PageInfo", "SourceInfo", "inspect_sources"]


class PageInfo(BaseModel):
    """One page: its size in pixels at the inspection DPI (images: as stored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    number: int = Field(ge=1)
    width: int = Field(description="pixels")
    height: int = Field(description="pixels")
    dpi: float | None = Field(default=None, description="render DPI (PDF pages only)")
    rotation: int | None = Field(
        default=None, description="clockwise turn convert would apply (with --orient)"
    )
    skew: float | None = Field(
        default=None, description="skew convert would straighten, degrees (with --orient)"
    )
    orientation_confidence: float | None = Field(
        default=None, description="how sure the measure is, 0-1 (with --orient)"
    )


class SourceInfo(BaseModel):
    """One file of the batch: what it is and its pages, or why it cannot be read."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    source: str
    type: Literal["pdf", "image"] | None = Field(description="sniffed from content")
    pages: list[PageInfo] = Field(default_factory=list)
    error: str | None = Field(default=None, description="why it cannot be read, else null")


def _inspect(
    name: str, source: Source, password: str | None, dpi: int, limits: Limits
) -> SourceInfo:
    try:
        data = read_source(source, name)
    except InputError as error:
        return SourceInfo(source=name, type=None, error=error.reason)
    head = head_bytes(data)
    kind = sniff(head)
    if kind is None:
        reason = "the file is empty" if not head else "not a PDF or a supported image (by content)"
        return SourceInfo(source=name, type=None, error=reason)
    try:
        if kind == "pdf":
            reader = InProcessPdf()
            try:
                sizes = reader.open(data, password, name)
            finally:
                reader.close()
            pages = []
            for number, (width, height) in enumerate(sizes, start=1):
                scale, _notes = pdf_scale(width, height, dpi, limits)
                pixels = rendered_size(width, height, scale)
                pages.append(
                    PageInfo(
                        number=number, width=pixels[0], height=pixels[1], dpi=round(scale * 72, 2)
                    )
                )
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
            with image:
                pages = []
                for index in range(getattr(image, "n_frames", 1)):
                    image.seek(index)
                    pages.append(PageInfo(number=index + 1, width=image.width, height=image.height))
    except InputError as error:
        return SourceInfo(source=name, type=kind, error=error.reason)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        return SourceInfo(source=name, type=kind, error=image_error(error))
    return SourceInfo(source=name, type=kind, pages=pages)


def inspect_sources(
    sources: Iterable[Source],
    *,
    password: str | None = None,
    dpi: int = 150,
    limits: Limits | None = None,
    orient: bool = False,
) -> Iterator[SourceInfo]:
    """One ``SourceInfo`` per document behind ``sources``; never raises on bad input.

    Page sizes are what ``convert`` renders: the same rounding and the same pixel limit.
    With ``orient`` each page is rendered and its orientation and skew measured: the
    ``rotation``, ``skew`` and ``orientation_confidence`` convert would record.
    """
    limits = limits or Limits()
    for item in expand_sources(sources, limits):
        if item.source is None:
            reason = item.error.reason if item.error else "cannot be read"
            yield SourceInfo(source=item.name, type=None, error=reason)
        else:
            info = _inspect(item.name, item.source, password, dpi, limits)
            yield _oriented(info, item.source, password, dpi, limits) if orient else info


def _oriented(
    info: SourceInfo, source: Source, password: str | None, dpi: int, limits: Limits
) -> SourceInfo:
    """``info`` with each page's orientation measured as convert would (a page that fails
    to render keeps null fields)."""
    if info.error is not None:
        return info
    measured: dict[int, dict[str, float | int]] = {}
    reader = InProcessPdf()
    try:
        for page in load_pages(source, password=password, dpi=dpi, limits=limits, reader=reader):
            if isinstance(page, PageImage):
                turn = upright(page).turn
                assert turn is not None
                measured[page.number] = turn.record()
    except InputError:
        pass
    finally:
        reader.close()
    pages = [p.model_copy(update=measured.get(p.number, {})) for p in info.pages]
    return info.model_copy(update={"pages": pages})
