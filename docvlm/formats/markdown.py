"""Plain text and Markdown of a document, block by block in the shared reading order.

Plain text is for search indexes and diffs: lines as read, blocks apart by a blank line,
tables as tab-separated rows, a molecule as its SMILES, pages apart by a form feed (as
``pdftotext`` writes them). Markdown is for people and RAG pipelines: the same blocks,
tables as GitHub tables, a molecule as a ``smiles`` code block, music and figures as a
short note, and a ``<!-- page N -->`` comment before each page. Text the model read is
escaped so that it never turns into Markdown markup (a line "# 1" stays text), in table
cells too (a cell ``<img onerror=...>`` stays text, a ``|`` stays in its cell). Both go
through ``clean_text``, the rule every format applies to control characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from docvlm.formats.common import clean_text
from docvlm.formats.order import Block, reading_order
from docvlm.results import MoleculeResult, MusicResult, Page, TableResult
from parsers import Table

__all__ = ["document_markdown", "document_text", "page_markdown", "page_text"]

_INLINE = re.compile(r"([\\`*_~\[\]<>|])")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")  # "&amp;" would print as "&"
_MARKER = re.compile(r"^(\s*)([#+=~-])(?=\s|$)", re.MULTILINE)
_NUMBERED = re.compile(r"^(\s*\d+)([.)])(?=\s|$)", re.MULTILINE)


def escape(text: str) -> str:
    """``text`` as literal Markdown: inline markup characters, entity references and
    line-start markers (headings, quotes, list items) escaped with a backslash."""
    out = _ENTITY.sub(r"\\&", _INLINE.sub(r"\\\1", text))
    out = _MARKER.sub(r"\1\\\2", out)
    return _NUMBERED.sub(r"\1\\\2", out)


def _note(block: Block) -> str:
    """Why a block has nothing to show (a result that did not parse)."""
    error = block.result.error or "nothing read"
    return f"[{block.kind} not read: {error}]"


def _text_block(block: Block) -> str:
    result = block.result
    if isinstance(result, TableResult):
        if result.table is None:
            return _note(block)
        return "\n".join("\t".join(row) for row in result.table.grid())
    if isinstance(result, MoleculeResult):
        return block.text or _note(block)
    if isinstance(result, MusicResult):
        return _music_note(result)
    return block.text


def _markdown_block(block: Block) -> str:
    result = block.result
    if isinstance(result, TableResult):
        if result.table is None:
            return f"*{escape(_note(block))}*"
        return _table(result.table)
    if isinstance(result, MoleculeResult):
        if not block.lines:
            return f"*{escape(_note(block))}*"
        return f"```smiles\n{block.text}\n```"
    if isinstance(result, MusicResult):
        return f"*{escape(_music_note(result))}*"
    if block.kind == "caption":
        return f"*Figure: {escape(' '.join(block.text.split()))}*"
    if block.kind == "ask":
        return f"**Answer:** {escape(' '.join(block.text.split()))}"
    return "\n".join(escape(line.text) for line in block.lines)


def _cell(text: str) -> str:
    """A cell's text as literal Markdown on its table line: one line, escaped (``|`` too,
    so it stays in its cell), a leading ``#`` as well."""
    out = escape(" ".join(text.split()))
    return "\\" + out if out.startswith("#") else out


def _table(table: Table) -> str:
    """A GitHub table of ``table``'s grid, the first row as its header line."""
    rows = table.grid()
    if not rows:
        return ""
    lines = ["| " + " | ".join(_cell(text) for text in row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * table.shape[1])
    return "\n".join(lines)


def _music_note(result: MusicResult) -> str:
    if result.score is None:
        return f"[music not read: {result.error or 'nothing read'}]"
    parts = "part" if result.score.part_count == 1 else "parts"
    notes = "note" if result.score.note_count == 1 else "notes"
    return (
        f"[music: {result.score.part_count} {parts}, {result.score.note_count} {notes}; "
        "the kern and MusicXML are in the record]"
    )


def _page(page: Page, render: Callable[[Block], str], error: Callable[[str], str]) -> str:
    if page.error and not page.results:
        return clean_text(error(f"[page {page.number} not read: {page.error}]"))
    parts = [render(block) for block in reading_order(page)]
    return clean_text("\n\n".join(part for part in parts if part))


def page_text(page: Page) -> str:
    """One page as plain text (no trailing newline)."""
    return _page(page, _text_block, str)


def page_markdown(page: Page) -> str:
    """One page as Markdown, without the page comment (no trailing newline)."""
    return _page(page, _markdown_block, lambda note: f"*{escape(note)}*")


def document_text(source: str, pages: Sequence[Page], error: str | None = None) -> str:
    """A document (``source``, its ``pages``, the ``error`` that stopped it) as plain text:
    pages in order, apart by a form feed."""
    if error and not pages:
        return clean_text(f"[{source} not read: {error}]") + "\n"
    return "\n\f".join(page_text(page) for page in pages) + "\n"


def document_markdown(source: str, pages: Sequence[Page], error: str | None = None) -> str:
    """A document as Markdown: each page led by a ``<!-- page N -->`` comment."""
    if error and not pages:
        return clean_text(f"*{escape(f'[{source} not read: {error}]')}*") + "\n"
    parts = [f"<!-- page {page.number} -->\n\n{page_markdown(page)}" for page in pages]
    return "\n\n".join(parts).rstrip() + "\n"
