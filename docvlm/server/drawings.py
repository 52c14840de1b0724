"""Pictures of results for the viewer: molecules drawn by RDKit, scores engraved by verovio.

Both come back as SVG documents that the viewer shows in ``<img>`` elements (an image
cannot run scripts), and the service sends them with a Content-Security-Policy that
forbids scripts, so even text the model wrote into a drawing stays inert.
"""

from __future__ import annotations

import threading
from typing import Any

from docvlm.errors import MissingDependencyError
from docvlm.formats.engraving import verovio_toolkit
from parsers import Molecule, Score

__all__ = ["DrawingError", "molecule_svg", "music_svg"]

_VEROVIO_LOCK = threading.Lock()  # one toolkit, not thread-safe
_toolkit: Any = None


class DrawingError(ValueError):
    """The result holds nothing that can be drawn; says why."""


def molecule_svg(molecule: Molecule, size: int = 360) -> str:
    """The 2-D depiction of a valid molecule, drawn by RDKit."""
    try:
        from rdkit import Chem
        from rdkit.Chem.Draw import rdMolDraw2D
    except ImportError as error:
        raise MissingDependencyError(
            "drawing molecules needs RDKit: pip install 'docvlm[chem]'"
        ) from error
    if not molecule.valid or not molecule.smiles:
        raise DrawingError(f"the SMILES did not parse: {molecule.error or 'no SMILES'}")
    mol = Chem.MolFromMolBlock(molecule.molblock) if molecule.molblock else None
    if mol is None:
        mol = Chem.MolFromSmiles(molecule.smiles)
    if mol is None:
        raise DrawingError("RDKit cannot rebuild the molecule")
    drawer = rdMolDraw2D.MolDraw2DSVG(size, size)
    rdMolDraw2D.PrepareAndDrawMolecule(drawer, mol)
    drawer.FinishDrawing()
    svg: str = drawer.GetDrawingText()
    return svg


def _verovio() -> Any:
    global _toolkit
    if _toolkit is None:
        _toolkit = verovio_toolkit("server")
        _toolkit.setOptions(
            {
                "pageWidth": 1800,
                "scale": 35,
                "adjustPageHeight": True,
                "breaks": "auto",
                "header": "none",
                "footer": "none",
            }
        )
    return _toolkit


def music_svg(score: Score) -> str:
    """The first page of the score engraved by verovio, from its MusicXML (or its kern)."""
    with _VEROVIO_LOCK:
        toolkit = _verovio()
        if not toolkit.loadData(score.musicxml or score.kern):
            raise DrawingError("verovio cannot read the score")
        if toolkit.getPageCount() < 1:
            raise DrawingError("verovio engraved no page")
        svg: str = toolkit.renderToSVG(1)
    return svg
