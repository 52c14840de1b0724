"""One-call functions over a short-lived ``DocVLM`` client (as ``httpx.get`` over a Client).

Each call loads the model, reads, and lets it go; keep a ``DocVLM`` to read many files.
"""

from __future__ import annotations

from collections.abc import Sequence

from docvlm.client import DocVLM
from docvlm.document import Document
from docvlm.reading.render import PageSelection, Source
from docvlm.results import MoleculeResult, MusicResult, TableResult, TextResult
from docvlm.settings import Settings
from docvlm.tasks import TaskName

__all__ = ["convert", "read_molecule", "read_music", "read_table", "read_text"]


def read_text(
    source: Source,
    *,
    checkpoint: str | None = None,
    pages: PageSelection = None,
    password: str | None = None,
    dpi: int | None = None,
    max_new_tokens: int | None = None,
    settings: Settings | None = None,
) -> list[TextResult]:
    """Text of each selected page of a PDF or image (path, bytes, file or PIL image)."""
    with DocVLM(settings, checkpoint=checkpoint) as client:
        return client.read_text(
            source,
            pages=pages,
            password=password,
            dpi=dpi,
            max_new_tokens=max_new_tokens,
        )


def read_table(
    source: Source,
    *,
    checkpoint: str | None = None,
    pages: PageSelection = None,
    password: str | None = None,
    dpi: int | None = None,
    max_new_tokens: int | None = None,
    settings: Settings | None = None,
) -> list[TableResult]:
    """The table of each selected page or table image."""
    with DocVLM(settings, checkpoint=checkpoint) as client:
        return client.read_table(
            source,
            pages=pages,
            password=password,
            dpi=dpi,
            max_new_tokens=max_new_tokens,
        )


def read_molecule(
    source: Source,
    *,
    checkpoint: str | None = None,
    pages: PageSelection = None,
    password: str | None = None,
    dpi: int | None = None,
    max_new_tokens: int | None = None,
    settings: Settings | None = None,
) -> list[MoleculeResult]:
    """The chemical structure of each selected page or structure image."""
    with DocVLM(settings, checkpoint=checkpoint) as client:
        return client.read_molecule(
            source,
            pages=pages,
            password=password,
            dpi=dpi,
            max_new_tokens=max_new_tokens,
        )


def read_music(
    source: Source,
    *,
    checkpoint: str | None = None,
    pages: PageSelection = None,
    password: str | None = None,
    dpi: int | None = None,
    max_new_tokens: int | None = None,
    settings: Settings | None = None,
) -> list[MusicResult]:
    """The score of each selected page or music image."""
    with DocVLM(settings, checkpoint=checkpoint) as client:
        return client.read_music(
            source,
            pages=pages,
            password=password,
            dpi=dpi,
            max_new_tokens=max_new_tokens,
        )


def convert(
    source: Source,
    *,
    tasks: Sequence[TaskName] = ("text",),
    checkpoint: str | None = None,
    pages: PageSelection = None,
    password: str | None = None,
    dpi: int | None = None,
    max_new_tokens: int | None = None,
    settings: Settings | None = None,
) -> Document:
    """Run ``tasks`` on every selected page; input errors are recorded in the Document."""
    with DocVLM(settings, checkpoint=checkpoint) as client:
        return client.convert(
            source,
            tasks=tasks,
            pages=pages,
            password=password,
            dpi=dpi,
            max_new_tokens=max_new_tokens,
        )
