"""A record's pages: the page image re-rendered from its source, and a molecule or score
result drawn as SVG."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from docvlm.results import MoleculeResult, MusicResult
from docvlm.server.archive import PageImageError
from docvlm.server.documents import document_or_404
from docvlm.server.drawings import DrawingError, molecule_svg, music_svg
from docvlm.server.state import Given

__all__ = ["DRAWING_CSP", "router"]

DRAWING_CSP = "default-src 'none'; style-src 'unsafe-inline'"

router = APIRouter()


@router.get(
    "/v1/documents/{number}/pages/{page}/image",
    responses={200: {"content": {"image/png": {}}}},
    response_class=Response,
)
async def page_image(number: int, page: int, service: Given) -> Response:
    """The page as the model saw it, re-rendered from the source (PNG)."""
    document_or_404(service.archive, number)
    try:
        png = await asyncio.to_thread(service.archive.page_png, number, page)
    except (KeyError, PageImageError):  # one answer, whatever the cause (logged)
        raise HTTPException(404, "no such page image") from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=600"})


@router.get(
    "/v1/documents/{number}/pages/{page}/results/{index}/drawing",
    responses={200: {"content": {"image/svg+xml": {}}}},
    response_class=Response,
)
async def drawing(number: int, page: int, index: int, service: Given) -> Response:
    """A molecule drawn by RDKit or a score engraved by verovio, as SVG."""
    found = [p for p in document_or_404(service.archive, number).pages if p.number == page]
    if not found or not 0 <= index < len(found[0].results):
        raise HTTPException(404, f"document {number} has no result {index} on page {page}")
    result = found[0].results[index]
    try:
        if isinstance(result, MoleculeResult) and result.molecule is not None:
            svg = await asyncio.to_thread(molecule_svg, result.molecule)
        elif isinstance(result, MusicResult) and result.score is not None:
            svg = await asyncio.to_thread(music_svg, result.score)
        else:
            raise DrawingError(f"a {result.task} result without a molecule or score")
    except DrawingError as error:
        raise HTTPException(404, str(error)) from None
    return Response(
        svg,
        media_type="image/svg+xml",
        headers={"Content-Security-Policy": DRAWING_CSP, "Cache-Control": "max-age=600"},
    )
