"""Corrections as data, and what one does to a record: a text line, a table cell, a whole
output replaced, or a page marked reviewed.

Each edit is checked the way model output is (a table must parse, a SMILES must pass
RDKit, kern must give notes); one that fails raises ``CorrectionError`` with the reason
and changes nothing. A corrected result keeps the model's own output in ``raw`` and
carries ``corrected=True``. ``apply_log`` replays a destination's log onto a Document
the model wrote again (a rerun): a correction made against another model output is still
applied, and the page says so in its ``warnings``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Self, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from docvlm.document import Document
from docvlm.errors import DocVLMError
from docvlm.reading.assemble import document_tables
from docvlm.results import (
    RESULT_TYPES,
    MoleculeResult,
    MusicResult,
    Page,
    Result,
    TableResult,
    TextResult,
)
from parsers import Box, ParseError, box_to_tokens, normalise_kern, parse_table
from parsers.table import Cell, sections_html, span_attributes

__all__ = [
    "Correction",
    "CorrectionError",
    "LogEntry",
    "VersionConflict",
    "apply_entry",
    "apply_log",
    "edit_result",
    "frame_of",
    "not_applied",
    "read_entries",
    "read_log",
    "written",
]


class CorrectionError(DocVLMError, ValueError):
    """A correction that cannot be applied; ``str(error)`` is the reason."""


class VersionConflict(CorrectionError):
    """The page changed since the version the edit was made against, at the same place;
    ``current`` is the page's version now (reload, and send the edit again)."""

    def __init__(self, message: str, *, current: int) -> None:
        self.current = current
        super().__init__(message)


class Correction(BaseModel):
    """One edit, as a line of ``docvlm correct``'s file (docs/corrections.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: StrictStr = Field(description="SHA-256 of the source (the record's sha256)")
    page: StrictInt = Field(ge=1, description="page number, from 1")
    result: StrictInt | None = Field(default=None, ge=0, description="index in the page's results")
    line: StrictInt | None = Field(default=None, ge=0, description="text line, from 0")
    cell: tuple[StrictInt, StrictInt] | None = Field(
        default=None, description="[row, col]: the table's <tr> from 0, that row's cell from 0"
    )
    text: StrictStr | None = Field(default=None, description="the line's or cell's new text")
    value: StrictStr | None = Field(
        default=None, description="the whole output, as the model writes"
    )
    reviewed: StrictBool | None = Field(
        default=None, description="mark the page reviewed (or not): true or false, not a word"
    )
    version: StrictInt | None = Field(
        default=None, ge=0, description="the page version the edit was made against"
    )
    by: StrictStr | None = Field(default=None, description="who made it, when known")

    @field_validator("cell", mode="before")
    @classmethod
    def _row_col(cls, cell: object) -> object:
        # said whole, not as pydantic's "cell.1: Field required" for [1]
        if cell is None:
            return cell
        if isinstance(cell, list | tuple) and len(cell) == 2 and all(type(n) is int for n in cell):
            return cell
        raise ValueError(f"give [row, col], two whole numbers (not {str(cell)[:40]})")

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [k for k in ("line", "cell", "value", "reviewed") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of line, cell, value or reviewed")
        if kinds[0] in ("line", "cell") and self.text is None:
            raise ValueError(f"a {kinds[0]} correction needs text")
        if kinds[0] not in ("line", "cell") and self.text is not None:
            raise ValueError("text goes with line or cell")
        if kinds[0] != "reviewed" and self.result is None:
            raise ValueError("give the result (its index in the page's results)")
        return self

    @property
    def target(self) -> str:
        """What the edit changes: ``result 0 line 3``, ``result 1 cell 2,0``, ``result 0``
        (a whole output) or ``reviewed``."""
        if self.reviewed is not None:
            return "reviewed"
        if self.line is not None:
            return f"result {self.result} line {self.line}"
        if self.cell is not None:
            return f"result {self.result} cell {self.cell[0]},{self.cell[1]}"
        return f"result {self.result}"

    def overlaps(self, other: Correction) -> bool:
        """Whether two edits change the same thing (a whole output overlaps its parts)."""
        if self.reviewed is not None or other.reviewed is not None or self.result != other.result:
            return False
        whole = f"result {self.result}"
        return self.target == other.target or whole in (self.target, other.target)


class LogEntry(Correction):
    """One line of a destination's corrections log: the edit, and when, what it replaced
    and with what, the model output it was made on, and the page version it made."""

    version: int | None = Field(default=None, ge=0, description="the page version it made")
    time: str = Field(description="when it was applied (ISO 8601, UTC)")
    before: str | None = Field(default=None, description="the value it replaced")
    after: str | None = Field(default=None, description="the value it wrote")
    raw: str | None = Field(default=None, description="the model output the edit was made on")
    sources: tuple[str, ...] = Field(
        default=(),
        description="the names of the records it was made on (a rerun of a file "
        "whose bytes changed since says the correction is not applied)",
    )


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def frame_of(box: Box) -> Box:
    """The square the model read for a region (``crop_square``: padded right and bottom)."""
    x0, y0 = int(box.x0), int(box.y0)
    side = max(round(box.x1) - x0, round(box.y1) - y0, 1)
    return Box(x0=x0, y0=y0, x1=x0 + side, y1=y0 + side)


def _relative(box: Box | None, frame: Box) -> Box | None:
    if box is None:
        return None
    return box.shift(-frame.x0, -frame.y0)


def written(result: Result, frame: Box) -> str | None:
    """The result's (corrected) values as the model is trained to write them, boxes in
    the square ``frame`` it read; None when there is nothing to learn from."""
    side = frame.width
    if isinstance(result, TableResult) and result.table is not None:

        def cell_html(cell: Cell) -> str:
            box = _relative(cell.box, frame)
            coords = "" if box is None else f' coords="{box_to_tokens(box, side, side)}"'
            return f"<td{span_attributes(cell)}{coords}>{cell.content}</td>"

        return sections_html(result.table, cell_html)
    if isinstance(result, TextResult) and result.lines:
        lines = []
        for line in result.lines:
            box = _relative(line.box, frame)
            lines.append(line.text if box is None else box_to_tokens(box, side, side) + line.text)
        return "\n".join(lines)
    if isinstance(result, MoleculeResult) and result.molecule and result.molecule.valid:
        return result.molecule.smiles
    if isinstance(result, MusicResult) and result.score is not None:
        kern = normalise_kern(result.score.kern)[0].splitlines()
        # as docvlm.finetune.datasets.kern_target: no lines the image does not show
        shown = [x for x in kern if x and not all(f.startswith("!") for f in x.split("\t"))]
        return "\n".join(shown) + "\n"
    return None


def _check_text(text: str, what: str) -> None:
    if "\n" in text or "\r" in text:
        raise CorrectionError(f"the {what} text holds a line break (correct one line at a time)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CorrectionError(f"the {what} text is not valid Unicode") from None


def _edit_line(result: Result, index: int, text: str) -> tuple[Result, str, str]:
    if not isinstance(result, TextResult):
        raise CorrectionError(f"result is {result.task}, not text: a line needs a text result")
    if index >= len(result.lines):
        raise CorrectionError(f"no line {index}: the result has {len(result.lines)} line(s)")
    _check_text(text, "line")
    lines = list(result.lines)
    before = lines[index].text
    lines[index] = lines[index].model_copy(update={"text": text})
    return cast(Result, result.model_copy(update={"lines": tuple(lines)})), before, text


def _edit_cell(result: Result, row: int, col: int, text: str) -> tuple[Result, str, str]:
    if not isinstance(result, TableResult):
        raise CorrectionError(f"result is {result.task}, not table: a cell needs a table result")
    table = result.table
    if table is None:
        raise CorrectionError("the table did not parse: correct it whole with value")
    cells = sorted((c for c in table.cells if c.row == row), key=lambda c: c.col)
    if not 0 <= col < len(cells):
        raise CorrectionError(f"no cell {col} in row {row}: that <tr> has {len(cells)} cell(s)")
    _check_text(text, "cell")
    target = cells[col]

    def cell_html(cell: Cell) -> str:
        content = text if cell is target else cell.content
        return f"<{cell.tag}{span_attributes(cell)}>{content}</{cell.tag}>"

    try:  # the table with the new cell must parse to the same grid
        again = parse_table(f"<table>{sections_html(table, cell_html)}</table>")
    except ParseError as error:
        raise CorrectionError(f"the table does not parse with that cell: {error.reason}") from None
    new = next((c for c in again.cells if (c.row, c.col) == (target.row, target.col)), None)
    if again.shape != table.shape or len(again.cells) != len(table.cells) or new is None:
        raise CorrectionError("the cell text changes the table's grid (markup in the text?)")
    fixed = target.model_copy(update={"text": new.text, "content": new.content})
    grid = tuple(fixed if c is target else c for c in table.cells)
    changed = table.model_copy(update={"cells": grid})
    return cast(Result, result.model_copy(update={"table": changed})), target.content, new.content


def _replace(result: Result, value: str) -> tuple[Result, str, str]:
    provenance = result.model_dump(
        include={"source", "page", "box", "checkpoint", "prompt", "confidence", "stop"}
    )
    provenance["box"] = result.box
    if result.stop == "blank":  # a person read what the model was never asked about
        provenance["stop"] = None
    parsed = RESULT_TYPES[result.task].from_output(value, frame_of(result.box), **provenance)
    if parsed.status != "ok":
        raise CorrectionError(f"the value does not parse as {result.task}: {parsed.error}")
    if isinstance(result, TableResult):  # a table joined across pages keeps its parts
        parsed = parsed.model_copy(update={"parts": result.parts})
    before = result.raw
    if result.corrected:  # the value a person wrote before, as the model would write it
        before = written(result, frame_of(result.box)) or result.summary()
    fixed = parsed.model_copy(update={"raw": result.raw})  # raw: the model's own output
    return cast(Result, fixed), before, value


def edit_result(result: Result, correction: Correction) -> tuple[Result, str, str]:
    """``result`` with ``correction`` applied and marked ``corrected``, the value it
    replaced and the one it wrote; ``CorrectionError`` when the edit does not check."""
    if correction.line is not None and correction.text is not None:
        edited, before, after = _edit_line(result, correction.line, correction.text)
    elif correction.cell is not None and correction.text is not None:
        edited, before, after = _edit_cell(result, *correction.cell, correction.text)
    elif correction.value is not None:
        edited, before, after = _replace(result, correction.value)
    else:
        raise CorrectionError("nothing to change in a result")
    return edited.model_copy(update={"corrected": True}), before, after


def _page_status(page: Page, results: tuple[Result, ...]) -> str:
    if page.status == "error":
        return "error"
    return "parse_error" if any(r.status == "parse_error" for r in results) else "ok"


def apply_entry(
    document: Document, entry: Correction, *, raw: str | None = None
) -> tuple[Document, str, str]:
    """``document`` with one edit applied to its page (tables joined again), the value it
    replaced and wrote. ``raw``: warn on the page when the result's model output is not
    this one (the edit was made on another reading)."""
    page = next((p for p in document.pages if p.number == entry.page), None)
    where = f"{document.source}, page {entry.page}"
    if page is None:
        raise CorrectionError(f"{where}: no such page in the record")
    if entry.reviewed is not None:
        return document, "", ""
    index = cast(int, entry.result)
    if index >= len(page.results):
        raise CorrectionError(f"{where}: no result {index} (the page has {len(page.results)})")
    results = list(page.results)
    try:
        results[index], before, after = edit_result(results[index], entry)
    except CorrectionError as error:
        raise CorrectionError(f"{where}, {entry.target}: {error}") from None
    warnings = page.warnings
    if raw is not None and page.results[index].raw != raw:
        warnings += (
            f"{entry.target}: a correction made on another model output was kept "
            "over this reading (docs/corrections.md)",
        )
    fixed = page.model_copy(
        update={
            "results": tuple(results),
            "status": _page_status(page, tuple(results)),
            "warnings": warnings,
        }
    )
    pages = tuple(fixed if p is page else p for p in document.pages)
    updated = document.model_copy(update={"pages": pages, "tables": document_tables(list(pages))})
    return updated, before, after


def apply_log(document: Document, entries: Iterable[LogEntry]) -> Document:
    """``document`` (as the model wrote it, or as already corrected) with every entry of
    its source's log applied in order; an entry that no longer fits (its line is gone
    after a new reading) is left out and the page says so in its ``warnings``."""
    for entry in entries:
        if entry.reviewed is not None:
            continue
        if entry.sha256 != document.sha256:
            if document.source in entry.sources:  # the file's bytes changed since
                document = _warn(
                    document,
                    entry.page,
                    f"{NOT_APPLIED}{document.source}, page {entry.page}, {entry.target}: made "
                    f"on other bytes of this file (sha256 {entry.sha256[:12]}...)",
                )
            continue
        try:
            document, _, _ = apply_entry(document, entry, raw=entry.raw)
        except CorrectionError as error:
            document = _warn(document, entry.page, f"{NOT_APPLIED}{error}")
    return _deduplicated(document)


#: How a page's warning about a correction its reading has no place for begins.
NOT_APPLIED = "correction not applied: "


def not_applied(document: Document) -> list[tuple[int, str]]:
    """Page number and warning of each correction ``document``'s reading had no place for
    (kept in the log; a run reports them)."""
    return [(p.number, w) for p in document.pages for w in p.warnings if w.startswith(NOT_APPLIED)]


def _warn(document: Document, number: int, warning: str) -> Document:
    """``warning`` on page ``number``, or on the first page when the record has no such page."""
    if all(p.number != number for p in document.pages) and document.pages:
        number = document.pages[0].number
    pages = tuple(
        p.model_copy(update={"warnings": (*p.warnings, warning)}) if p.number == number else p
        for p in document.pages
    )
    return document.model_copy(update={"pages": pages})


def _deduplicated(document: Document) -> Document:
    """One warning of each kind per page (a log replayed onto a corrected record)."""
    pages = tuple(
        p.model_copy(update={"warnings": tuple(dict.fromkeys(p.warnings))}) for p in document.pages
    )
    return document.model_copy(update={"pages": pages})


def read_log(path: Path) -> list[LogEntry]:
    """Every correction in the log at ``path`` (``Output.corrections_file``), oldest first
    (none when there is no log)."""
    if not path.exists():
        return []
    return read_entries(path.read_bytes(), path)


def read_entries(data: bytes, path: Path, first: int = 1) -> list[LogEntry]:
    entries = []
    for number, line in enumerate(data.splitlines(), start=first):
        if not line.strip():
            continue
        try:
            entries.append(LogEntry.model_validate_json(line))
        except ValidationError as error:
            cause = error.errors()[0]["msg"]
            raise CorrectionError(f"{path}, line {number}: not a correction ({cause})") from None
    return entries
