"""The viewer's editors: corrections saved through the service, and previews of an edit.

::

    GET  /v1/editing                                  is editing on; is a token needed
    GET  /v1/documents/{n}/pages/{p}/version          the page's version and review mark
    POST /v1/corrections                              one correction (docs/corrections.md)
    POST /v1/preview                                  a SMILES or kern drawn (SVG), a table
                                                      parsed and rebuilt (JSON)

Editing is off unless the app was given an ``Editing`` (``docvlm view OUT --edit``): the
two POSTs then answer 403. With a token, they need ``Authorization: Bearer TOKEN`` (401
without it). With or without one, a POST must be ``Content-Type: application/json`` (415)
and not come from another web page (an ``Origin`` other than the viewer's, or
``Sec-Fetch-Site: cross-site``: 403). While a conversion writes the output a save answers
423 and changes nothing. A correction is checked as model output is; a refused one answers 422 with
the reason, one made against a page version that another edit of the same place has
passed answers 409 with ``current`` (the page's version now), and nothing changes.
Edits to other places of the page are merged (``docvlm.archive.corrections``).

A preview is bounded (``MAX_PREVIEW`` characters, the parsers' own limits) and its answer
is data: SVG for an ``<img>`` with a script-forbidding CSP, a table as the parser's
rebuilt, escaped HTML, which the viewer copies through its whitelist.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from docvlm.archive.corrections import Corrections
from docvlm.archive.edits import Correction, CorrectionError, VersionConflict, apply_log
from docvlm.archive.review import partly_corrected, reviewed_pages
from docvlm.document import Document
from docvlm.errors import DestinationBusyError
from docvlm.server.archive import (
    Archive,
    DocumentSummary,
    Entry,
    Suspect,
    filter_suspects,
    index_entry,
)
from docvlm.server.documents import document_or_404
from docvlm.server.drawings import DrawingError, molecule_svg, music_svg
from docvlm.server.pages import DRAWING_CSP
from docvlm.server.state import Given
from parsers import ParseError, parse_kern, parse_smiles, parse_table

__all__ = ["MAX_PREVIEW", "EditedArchive", "Editing", "Preview", "router"]

MAX_PREVIEW = 200_000  # characters of a previewed value (a long score fits)

router = APIRouter()


@dataclass
class Editing:
    """Editing turned on: the output's corrections, and the token writes need (or None)."""

    store: Corrections
    token: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)  # one writer per process


class EditedArchive:
    """An archive whose records are read with the output's corrections applied (a JSONL
    or Parquet output gets them only at its next compaction; a folder is rewritten).

    Its index (the list's suspect counts, the suspects, the review queue) follows the
    log: before each answer, the documents that corrections logged since name (the
    viewer's saves, and others' through ``docvlm correct``) are read again, corrected, and
    indexed again; the review marks are read from the log."""

    def __init__(self, inner: Archive, editing: Editing) -> None:
        self.inner = inner
        self.editing = editing
        self._fresh: dict[int, Entry] = {}  # documents indexed again, by number
        self._seen = 0  # log entries already indexed
        self._indexing = threading.Lock()  # taken before editing.lock, never inside it

    def summaries(self, offset: int, limit: int) -> tuple[int, list[DocumentSummary]]:
        fresh = self._refresh()
        total, window = self.inner.summaries(offset, limit)
        return total, [fresh[s.id].summary if s.id in fresh else s for s in window]

    def document(self, number: int) -> Document:
        document = self.inner.document(number)
        if self.editing.store.kind == "folder":
            return document
        with self.editing.lock:
            self.editing.store.refresh()  # others' saves (docvlm correct) included
            entries = list(self.editing.store.entries)
        return apply_log(document, entries) if entries else document

    def suspects(self, min_confidence: float | None, limit: int) -> list[Suspect]:
        return filter_suspects(self.entries(), min_confidence, limit)

    def page_png(self, number: int, page: int) -> bytes:
        return self.inner.page_png(number, page)

    def entries(self) -> list[Entry]:
        fresh = self._refresh()
        return [fresh.get(entry.summary.id, entry) for entry in self.inner.entries()]

    def reviewed(self) -> set[tuple[str, int]]:
        with self.editing.lock:
            self.editing.store.refresh()
            return reviewed_pages(self.editing.store.entries)

    def _refresh(self) -> dict[int, Entry]:
        """The entries indexed again, after the documents corrected since are."""
        with self._indexing:
            with self.editing.lock:
                self.editing.store.refresh()
                logged = self.editing.store.entries
                # a review mark too: it vouches for a page's results corrected in parts
                named = {e.sha256 for e in logged[self._seen :]}
                self._seen = len(logged)
                partial = partly_corrected(logged) if named else set()
            if named:
                for entry in self.inner.entries():
                    if entry.sha256 in named:
                        number = entry.summary.id
                        document = self.document(number)
                        self._fresh[number] = index_entry(number, document, partial)
            return dict(self._fresh)


def _editing(request: Request) -> Editing | None:
    editing: Editing | None = getattr(request.app.state, "editing", None)
    return editing


async def _writer(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Editing:
    editing = _editing(request)
    if editing is None:
        raise HTTPException(403, "editing is off: start the viewer with docvlm view OUT --edit")
    _same_site(request)
    if editing.token is not None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), editing.token.encode()
        ):
            raise HTTPException(
                401, "this service needs its token", headers={"WWW-Authenticate": "Bearer"}
            )
    return editing


def _same_site(request: Request) -> None:
    """Refuse a write another web page could make in the user's browser (without a token
    the service trusts whoever reaches it): a body not declared JSON (a form or a
    ``no-cors`` fetch), or a request whose browser says it comes from another origin."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise HTTPException(415, "a write must be sent as Content-Type: application/json")
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise HTTPException(403, "refused: a write from another site (Sec-Fetch-Site)")
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    if origin is not None and origin.lower() != own.lower():
        raise HTTPException(403, f"refused: a write from another origin ({origin[:100]})")


Writer = Annotated[Editing, Depends(_writer)]


@router.get("/v1/editing")
async def editing_state(request: Request) -> dict[str, bool]:
    """Whether corrections may be saved, and whether they need the token."""
    editing = _editing(request)
    return {"enabled": editing is not None, "token": bool(editing and editing.token)}


@router.get("/v1/documents/{number}/pages/{page}/version")
def page_version(number: int, page: int, service: Given, request: Request) -> dict[str, Any]:
    """The page's version (corrections made to it) and its review mark: what an edit is
    made against."""
    document = document_or_404(service.archive, number)
    if not any(p.number == page for p in document.pages):
        raise HTTPException(404, f"document {number} has no page {page}")
    editing = _editing(request)
    version, reviewed = 0, False
    if editing is not None and document.sha256 is not None:
        with editing.lock:
            editing.store.refresh()
            version = editing.store.version(document.sha256, page)
            reviewed = editing.store.reviewed(document.sha256, page)
    return {"sha256": document.sha256, "page": page, "version": version, "reviewed": reviewed}


@router.post(
    "/v1/corrections",
    responses={
        401: {"description": "the token is missing or wrong"},
        403: {"description": "editing is off, or a request from another site"},
        409: {"description": "the page changed at the same place; `current` is its version"},
        415: {"description": "the body is not sent as application/json"},
        422: {"description": "the edit does not check; `detail` is the reason"},
        423: {"description": "a conversion is writing the output; save again when it ends"},
    },
)
async def correct(correction: Correction, editing: Writer) -> JSONResponse:
    """Check and apply one correction (a line of ``docvlm correct``'s file with the page
    version it was made against); the new page version."""

    def apply() -> JSONResponse:
        with editing.lock:
            try:
                entry = editing.store.apply(correction)
            except DestinationBusyError:
                where = editing.store.destination
                return JSONResponse(
                    {"detail": f"a conversion is writing {where}; save again when it ends"},
                    status_code=423,
                )
            except VersionConflict as conflict:
                return JSONResponse(
                    {"detail": str(conflict), "current": conflict.current}, status_code=409
                )
            except CorrectionError as refused:
                return JSONResponse({"detail": str(refused)}, status_code=422)
        return JSONResponse(
            {"version": entry.version, "entry": entry.model_dump(mode="json", exclude_none=True)}
        )

    return await asyncio.to_thread(apply)


class Preview(BaseModel):
    """A value to draw or rebuild before it is saved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["molecule", "music", "table"] = Field(description="what the value is")
    value: str = Field(max_length=MAX_PREVIEW, description="as the model writes it")


@router.post(
    "/v1/preview",
    responses={200: {"content": {"image/svg+xml": {}, "application/json": {}}}},
    response_class=Response,
)
async def preview(asked: Preview, _: Writer) -> Response:
    """A SMILES drawn by RDKit or a kern score engraved by verovio (SVG), or a table
    parsed and rebuilt (JSON: ``html``, ``shape``, ``repairs``); 422 with the parser's
    reason when the value does not parse."""
    try:
        return await asyncio.to_thread(_preview, asked)
    except (ParseError, DrawingError) as error:
        reason = error.reason if isinstance(error, ParseError) else str(error)
        raise HTTPException(422, f"{asked.task}: {reason}") from None


def _preview(asked: Preview) -> Response:
    if asked.task == "table":
        table = parse_table(asked.value)
        body = {"html": table.html, "shape": list(table.shape), "repairs": list(table.repairs)}
        return JSONResponse(body)
    if asked.task == "molecule":
        molecule = parse_smiles(asked.value.strip())
        if not molecule.valid:
            raise DrawingError(f"RDKit refuses the SMILES: {molecule.error}")
        svg = molecule_svg(molecule)
    else:
        svg = music_svg(parse_kern(asked.value))
    return Response(
        svg,
        media_type="image/svg+xml",
        headers={"Content-Security-Policy": DRAWING_CSP, "Cache-Control": "no-store"},
    )
