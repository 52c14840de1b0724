"""Result models: what each task found, where, from which model, and whether it parsed,
and the ``Page`` that holds them (``docvlm.document`` builds a ``Document`` of pages).

Every result carries its provenance (source, page, box in page pixels, task, checkpoint,
prompt, raw model output) and a status. Results are frozen pydantic models; the JSON
Schema of a list of results or of a ``Document`` is exported for ETL users by
``docvlm.json_schema()`` and ``docvlm schema``.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from parsers import (
    Box,
    Detection,
    Molecule,
    ParseError,
    Score,
    SpanScore,
    Table,
    TextLine,
    parse_kern,
    parse_locations,
    parse_smiles,
    parse_table,
    parse_text,
)

if TYPE_CHECKING:
    import pandas

__all__ = [
    "RESULT_TYPES",
    "SCHEMA_VERSION",
    "AnswerResult",
    "CaptionResult",
    "LayoutResult",
    "MoleculeResult",
    "MusicResult",
    "Page",
    "Result",
    "ResultBase",
    "Status",
    "TablePart",
    "TableResult",
    "TextResult",
]

Status = Literal["ok", "parse_error"]
PageStatus = Literal["ok", "parse_error", "error"]
DocumentStatus = Literal["success", "partial", "failure"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResultBase(Frozen):
    """Provenance and status shared by every result."""

    task: str
    source: str = Field(description="file path, or <bytes>/<image> for in-memory input")
    page: int = Field(ge=1, description="page number, from 1")
    box: Box = Field(description="region the model read, in page pixels")
    checkpoint: str = Field(description="hub id or directory of the model")
    prompt: str = Field(description="prefix given to the model")
    raw: str = Field(description="model output as written, <loc>/<seg> tokens kept")
    status: Status = Field(default="ok", description="ok, or parse_error when `raw` did not parse")
    corrected: bool = Field(
        default=False,
        description="a person corrected it (docs/corrections.md): the values are theirs, "
        "`raw` is still the model's own output",
    )
    error: str | None = Field(default=None, description="why parsing failed")
    confidence: float | None = Field(
        default=None,
        description="geometric mean probability of the generated tokens (0-1); None when "
        "the engine gave no log-probabilities (docs/review.md)",
    )
    stop: Literal["eos", "length", "repetition", "blank"] | None = Field(
        default=None,
        description="why generation ended: eos; length (cut at the token "
        "limit); repetition (a runaway loop was stopped, the output is suspect); "
        "blank (the region has no ink: the model was not called, nothing was read)",
    )

    @classmethod
    def from_output(
        cls, raw: str, frame: Box, score: SpanScore | None = None, **provenance: Any
    ) -> Self:
        """Parse ``raw`` read from the square ``frame`` (page pixels) into a result; with
        ``score`` (``docvlm.reading.confidence``) its lines or cells get a confidence.

        A ``ParseError`` (an output over the parsers' size limit included) becomes
        ``status="parse_error"``; boxes the parser finds are mapped from the frame to page
        pixels. Model output is untrusted: text that is not valid Unicode (lone surrogates,
        which no sink can encode) is kept with them replaced and is a ``parse_error``, so
        every path records it instead of raising.
        """
        raw, unsafe = _valid_unicode(raw)
        if unsafe:
            return cls(raw=raw, status="parse_error", error=unsafe, **provenance)
        try:
            payload = cls._parse(raw, frame, score)
        except ParseError as error:
            return cls(raw=raw, status="parse_error", error=error.reason, **provenance)
        return cls(raw=raw, **provenance, **payload)

    @classmethod
    def _parse(cls, raw: str, frame: Box, score: SpanScore | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def summary(self) -> str:
        """The result as plain text for people (what the CLI prints without --json); a
        result that holds nothing says why instead (``_why``)."""
        return self.raw if self.status == "ok" else self._why()

    def weakest_confidence(self) -> float | None:
        """The confidence of the result's weakest part: its lowest line or cell (a text or
        table result), else its own over the whole answer; None without log-probabilities."""
        return self.confidence

    def _why(self) -> str:
        """Why nothing was read: the status and its cause, or the blank region."""
        if self.stop == "blank":
            return f"{self.task} not read (blank): no ink in the region"
        return f"{self.task} not read ({self.status}): {self.error or 'no output'}"

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """A short repr: where it came from, how it went, and a preview of what was read."""
        yield "source", self.source
        yield "page", self.page
        yield "status", self.status
        if self.error:
            yield "error", preview(self.error)
        if self.stop and self.stop != "eos":
            yield "stop", self.stop
        if self.confidence is not None:
            yield "confidence", round(self.confidence, 3)
        if self.status == "ok":
            yield "read", preview(self.summary())


def _valid_unicode(raw: str) -> tuple[str, str | None]:
    """``raw`` with lone surrogates replaced by U+FFFD, and why it was changed (or None)."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        bad = sum(0xD800 <= ord(c) <= 0xDFFF for c in raw)
        fixed = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in raw)
        return fixed, (
            f"the output is not valid Unicode: {bad} lone surrogate(s), replaced with U+FFFD in raw"
        )
    return raw, None


def preview(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _to_page(box: Box | None, frame: Box) -> Box | None:
    return None if box is None else box.shift(frame.x0, frame.y0)


class TextResult(ResultBase):
    """Lines of text read from a page (tiles merged) or a region."""

    task: Literal["text"] = "text"
    lines: tuple[TextLine, ...] = Field(default=(), description="lines, boxes in page pixels")

    def summary(self) -> str:
        return self.text if self.status == "ok" else self._why()

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def weakest_confidence(self) -> float | None:
        known = [line.confidence for line in self.lines if line.confidence is not None]
        return min(known, default=self.confidence)

    @classmethod
    def _parse(cls, raw: str, frame: Box, score: SpanScore | None = None) -> dict[str, Any]:
        lines = parse_text(raw, frame.width, frame.height, score).lines
        return {
            "lines": tuple(ln.model_copy(update={"box": _to_page(ln.box, frame)}) for ln in lines)
        }


class TablePart(Frozen):
    """Where one part of a table stitched across pages (or regions) came from."""

    page: int = Field(ge=1)
    box: Box
    raw: str


class TableResult(ResultBase):
    """A table; cell boxes (when the model wrote coords) are in page pixels."""

    task: Literal["table"] = "table"
    table: Table | None = Field(default=None, description="the grid, None on parse errors")
    parts: tuple[TablePart, ...] = Field(
        default=(), description="for a table joined across pages: each part's provenance"
    )

    def summary(self) -> str:
        return self.table.to_markdown() if self.table else self._why()

    def weakest_confidence(self) -> float | None:
        cells = self.table.cells if self.table else ()
        known = [cell.confidence for cell in cells if cell.confidence is not None]
        return min(known, default=self.confidence)

    def _repr_html_(self) -> str:
        """Notebooks show the table (rebuilt, sanitized HTML), not the model's raw text."""
        if self.table is None:
            return f"<p>table not read: {html.escape(self.error or 'no table')}</p>"
        return self.table.html

    def to_pandas(self) -> pandas.DataFrame:
        """The table as a DataFrame (header rows become the column labels)."""
        if self.table is None:
            raise ValueError(f"{self.source}, page {self.page}: no table ({self.error})")
        return self.table.to_pandas()

    @classmethod
    def _parse(cls, raw: str, frame: Box, score: SpanScore | None = None) -> dict[str, Any]:
        table = parse_table(raw, frame.width, frame.height, score)
        cells = tuple(c.model_copy(update={"box": _to_page(c.box, frame)}) for c in table.cells)
        return {"table": table.model_copy(update={"cells": cells})}


class MoleculeResult(ResultBase):
    """A chemical structure; invalid SMILES keep the molecule with ``valid=False``."""

    task: Literal["molecule"] = "molecule"
    molecule: Molecule | None = Field(default=None, description="RDKit-checked molecule")

    def summary(self) -> str:
        if self.status != "ok" or self.molecule is None or not self.molecule.smiles:
            return self._why()
        return self.molecule.smiles

    def _repr_svg_(self) -> str | None:
        """Notebooks show the structure drawn by RDKit (nothing for an invalid SMILES)."""
        if self.molecule is None or not self.molecule.valid:
            return None
        try:
            from rdkit.Chem.Draw import rdMolDraw2D
        except ImportError:
            return None
        drawer = rdMolDraw2D.MolDraw2DSVG(300, 220)
        drawer.DrawMolecule(self.molecule.to_rdkit())
        drawer.FinishDrawing()
        svg: str = drawer.GetDrawingText()
        return svg

    @classmethod
    def _parse(cls, raw: str, frame: Box, score: SpanScore | None = None) -> dict[str, Any]:
        molecule = parse_smiles(raw)  # an invalid SMILES is a Molecule with its error
        status: Status = "ok" if molecule.valid else "parse_error"
        return {"molecule": molecule, "status": status, "error": molecule.error}


class MusicResult(ResultBase):
    """A score read as kern, with its MusicXML."""

    task: Literal["music"] = "music"
    score: Score | None = Field(default=None, description="the score, None on parse errors")

    def summary(self) -> str:
        return self.score.kern if self.score else self._why()

    @classmethod
    def _parse(cls, raw: str, frame: Box, score: SpanScore | None = None) -> dict[str, Any]:
        return {"score": parse_kern(raw)}


class LayoutResult(ResultBase):
    """Regions found on a page, boxes in page pixels."""

    task: Literal["layout"] = "layout"
    regions: tuple[Detection, ...] = Field(default=(), description="labelled boxes")

    def summary(self) -> str:
        if self.status != "ok":
            return self._why()
        return "\n".join(
            f"{d.label}\t{d.box.x0:.0f},{d.box.y0:.0f},{d.box.x1:.0f},{d.box.y1:.0f}"
            for d in self.regions
        )

    @classmethod
    def _parse(cls, raw: str, frame: Box, score: SpanScore | None = None) -> dict[str, Any]:
        found = parse_locations(raw, frame.width, frame.height)
        return {
            "regions": tuple(d.model_copy(update={"box": _to_page(d.box, frame)}) for d in found)
        }


class CaptionResult(ResultBase):
    """A description of a figure or page."""

    task: Literal["caption"] = "caption"
    text: str = Field(default="", description="the description")

    def summary(self) -> str:
        return self.text

    @classmethod
    def _parse(cls, raw: str, frame: Box, score: SpanScore | None = None) -> dict[str, Any]:
        return {"text": raw.strip()}


class AnswerResult(ResultBase):
    """An answer to a question about a page."""

    task: Literal["ask"] = "ask"
    text: str = Field(default="", description="the answer")

    def summary(self) -> str:
        return self.text

    @classmethod
    def _parse(cls, raw: str, frame: Box, score: SpanScore | None = None) -> dict[str, Any]:
        return {"text": raw.strip()}


Result = Annotated[
    TextResult
    | TableResult
    | MoleculeResult
    | MusicResult
    | LayoutResult
    | CaptionResult
    | AnswerResult,
    Field(discriminator="task"),
]

RESULT_TYPES: dict[str, type[ResultBase]] = {
    "text": TextResult,
    "table": TableResult,
    "molecule": MoleculeResult,
    "music": MusicResult,
    "layout": LayoutResult,
    "caption": CaptionResult,
    "ask": AnswerResult,
}


class Page(Frozen):
    """One page of a converted document."""

    number: int = Field(ge=1, description="page number, from 1")
    width: int = Field(default=0, ge=0, description="rendered width in pixels")
    height: int = Field(default=0, ge=0, description="rendered height in pixels")
    dpi: float | None = Field(default=None, description="render resolution (PDF pages)")
    status: PageStatus = Field(description="ok; parse_error if a result did not parse; error")
    error: str | None = Field(default=None, description="why the page failed")
    warnings: tuple[str, ...] = Field(
        default=(), description="what was changed to read the page (e.g. a lower DPI)"
    )
    results: tuple[Result, ...] = Field(default=(), description="results in reading order")
    rotation: Literal[0, 90, 180, 270] = Field(
        default=0,
        description="clockwise quarter turn (degrees) applied to read the page upright; "
        "boxes stay in the pixels of the page as scanned",
    )
    skew: float = Field(
        default=0.0,
        description="degrees the text lines were turned from horizontal (positive rising "
        "to the right) and straightened before reading; 0.0 where there was none",
    )
    orientation_confidence: float | None = Field(
        default=None,
        description="how sure the orientation measure was (0-1; below 0.5 the page is "
        "read as it lies); null when orientation was off",
    )

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, given: Any) -> Any:
        """A record read back carries ``confidence``; its results decide it again."""
        if isinstance(given, dict) and "confidence" in given:
            return {key: value for key, value in given.items() if key != "confidence"}
        return given

    @computed_field(  # type: ignore[prop-decorator]
        description="the weakest part the model wrote on the page (its lowest line, cell or "
        "answer confidence, 0-1), results a person corrected left out; null when none has "
        "one (docs/review.md)"
    )
    @property
    def confidence(self) -> float | None:
        reads = [r.weakest_confidence() for r in self.results if not r.corrected]
        return min((value for value in reads if value is not None), default=None)

    def outline(self, box: Box) -> tuple[tuple[float, float], ...]:
        """The four corners (top left, top right, bottom right, bottom left, as read) of a
        line or region whose bounds on the scan are ``box``, on a page read straightened by
        ``skew``: the record's boxes are the bounds of these turned rectangles."""
        return page_outline(box, self.rotation, self.skew)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "number", self.number
        yield "status", self.status
        if self.error:
            yield "error", preview(self.error)
        yield "results", [r.task for r in self.results]


def page_outline(box: Box, rotation: int, skew: float) -> tuple[tuple[float, float], ...]:
    """The rectangle, turned by ``skew`` (read lines rise by it on the upright page), whose
    axis-aligned bounds are ``box``, as four corners in page pixels (see ``Page.outline``)."""
    import math

    radians = math.radians(skew)
    cos, sin = math.cos(radians), abs(math.sin(radians))
    width, height = box.width, box.height
    if rotation in (90, 270):  # the bounds as they lie on the upright page
        width, height = height, width
    if sin < 1e-9 or abs(cos * cos - sin * sin) < 1e-9:
        long, short = width, height
    else:  # the bounds of a w x h rectangle turned by a: W = w c + h s, H = w s + h c
        long = max(0.0, (width * cos - height * sin) / (cos * cos - sin * sin))
        short = max(0.0, (height * cos - width * sin) / (cos * cos - sin * sin))
    # the line's direction on the upright page, then the quarter turn undone
    ux, uy = math.cos(radians), -math.sin(radians)
    vx, vy = -uy, ux  # down the page, across the line
    for _ in range(rotation // 90):  # undo a clockwise quarter turn: rotate a quarter back
        ux, uy, vx, vy = uy, -ux, vy, -vx
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    half_u, half_v = (ux * long / 2, uy * long / 2), (vx * short / 2, vy * short / 2)
    return (
        (cx - half_u[0] - half_v[0], cy - half_u[1] - half_v[1]),
        (cx + half_u[0] - half_v[0], cy + half_u[1] - half_v[1]),
        (cx + half_u[0] + half_v[0], cy + half_u[1] + half_v[1]),
        (cx - half_u[0] + half_v[0], cy - half_u[1] + half_v[1]),
    )


#: Version of the record layout (Document, Parquet row); bumped when a field changes meaning.
SCHEMA_VERSION = 1
