"""SMILES output to a molecule validated and canonicalised by RDKit (the ``chem`` extra).

The SMILES, InChI and InChIKey of a valid molecule are exactly RDKit's own for
``Chem.MolFromSmiles(text)``, stereo included. Values that RDKit would store wrapped
(charges beyond 8 bits, isotopes beyond 16) or that InChI cannot hold are refused with a
reason instead. The molfile (2-D coordinates, whose cost grows steeply with size) is
computed only when asked for, by ``Molecule.to_molblock()``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pydantic import Field

from parsers.base import Frozen, SmilesParseError, check_size

if TYPE_CHECKING:
    from rdkit.Chem import Mol

__all__ = [
    "MAX_ABS_CHARGE",
    "MAX_ISOTOPE_SHIFT",
    "MAX_RINGS",
    "MAX_RING_ATOMS",
    "MAX_SMILES_CHARS",
    "Molecule",
    "parse_smiles",
]

#: Largest formal charge on one atom accepted. RDKit keeps charges in 8 bits, so
#: ``[O-1000]`` silently becomes ``[O+24]``; no real structure needs more than this.
#: (RDKit reads at most two repeated signs, ``[O--]``, so the written number is all.)
MAX_ABS_CHARGE = 8
#: Largest distance of an isotope's mass number from the element's average mass. InChI
#: holds no more (``[300C]`` would get the InChI of ``[48C]``), and every known nuclide
#: lies well inside it. ``[0C]`` is refused too (RDKit would read it as ``[C]``).
MAX_ISOTOPE_SHIFT = 100
#: SMILES longer than this are refused. The molecule task writes at most 256 tokens (a
#: few hundred characters); canonical SMILES of a 10,000-atom chain takes seconds.
MAX_SMILES_CHARS = 1_000
#: Most rings (bonds - atoms + fragments) accepted: C60 has 31. RDKit's aromaticity
#: perception grows exponentially along fused chains (a 35-ring acene takes 2 s).
MAX_RINGS = 32
#: Largest ring accepted, in atoms: InChI of a conjugated 500-atom ring takes 5 s.
MAX_RING_ATOMS = 100

_BRACKET = re.compile(r"\[([^\[\]]{1,64})\]")
_STAMP = re.compile(r"^\[\d\d:\d\d:\d\d\] ")
_CHARGE = re.compile(r"([+-])(\d{1,12})(?::\d+)?$")
_ISOTOPE = re.compile(r"^(\d+)")


class Molecule(Frozen):
    """A molecule read from SMILES; ``valid`` says whether RDKit accepted it."""

    raw: str = Field(description="the text the model wrote")
    valid: bool = Field(description="RDKit parsed and sanitised the SMILES")
    smiles: str | None = Field(default=None, description="RDKit canonical SMILES, stereo kept")
    inchi: str | None = Field(default=None, description="standard InChI, stereo kept")
    inchikey: str | None = Field(default=None, description="standard InChIKey, stereo kept")
    formula: str | None = Field(default=None, description="molecular formula (Hill order)")
    error: str | None = Field(default=None, description="why the SMILES was rejected")

    def to_rdkit(self) -> Mol:
        """A fresh RDKit molecule; raises ``SmilesParseError`` when not valid."""
        from rdkit import Chem

        if not self.valid or self.smiles is None:
            raise SmilesParseError(self.error or "invalid SMILES", self.raw)
        mol = Chem.MolFromSmiles(self.smiles)
        if mol is None:  # pragma: no cover - canonical SMILES always re-parses
            raise SmilesParseError("canonical SMILES did not parse again", self.raw)
        return mol

    def to_molblock(self) -> str:
        """V2000 molfile with 2-D coordinates, computed now (seconds for 1,000+ atoms)."""
        from rdkit import Chem

        return str(Chem.MolToMolBlock(self.to_rdkit()))

    @property
    def molblock(self) -> str | None:
        """``to_molblock()``, or None for an invalid molecule (kept for older callers)."""
        return self.to_molblock() if self.valid else None


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().strip()
        if message:
            first = _STAMP.sub("", message.splitlines()[0])
            self.messages.append(first.removeprefix("SMILES Parse Error: "))


@contextmanager
def _rdkit_messages() -> Iterator[_Capture]:
    """RDKit's log records go to the returned handler only (not stderr) while inside."""
    from rdkit import rdBase

    rdBase.LogToPythonLogger()
    logger = logging.getLogger("rdkit")
    capture = _Capture()
    saved_handlers, saved_propagate = logger.handlers[:], logger.propagate
    logger.handlers = [capture]
    logger.propagate = False
    try:
        yield capture
    finally:
        logger.handlers = saved_handlers
        logger.propagate = saved_propagate


def _bracket_error(smiles: str) -> str | None:
    """Charges and isotopes RDKit would wrap, read from the text before RDKit sees it."""
    for atom in _BRACKET.findall(smiles):
        charge = _CHARGE.search(atom)
        if charge and int(charge.group(2)) > MAX_ABS_CHARGE:
            return f"charge {charge.group(1)}{charge.group(2)} on [{atom}] is out of range"
        isotope = _ISOTOPE.match(atom)
        # RDKit keeps 16 bits ([65548C] reads as [12C]) and drops 0 ([0C] reads as [C]).
        if isotope and (len(isotope.group(1)) > 3 or int(isotope.group(1)) == 0):
            return f"isotope {isotope.group(1)} on [{atom}] is out of range"
    return None


def _isotope_error(mol: Mol) -> str | None:
    """Isotopes InChI cannot hold (it stores the distance from the average mass)."""
    from rdkit import Chem

    table = Chem.GetPeriodicTable()
    for atom in mol.GetAtoms():
        isotope = atom.GetIsotope()
        if isotope:
            average = int(table.GetAtomicWeight(atom.GetAtomicNum()) + 0.5)
            if abs(isotope - average) > MAX_ISOTOPE_SHIFT:
                return (
                    f"isotope {isotope} on atom {atom.GetIdx()} ({atom.GetSymbol()}) is out of "
                    f"range: mass numbers within {MAX_ISOTOPE_SHIFT} of {average} are accepted"
                )
    return None


def _ring_error(mol: Mol) -> str | None:
    largest = max((len(ring) for ring in mol.GetRingInfo().AtomRings()), default=0)
    if largest > MAX_RING_ATOMS:
        return f"a ring of {largest} atoms, more than the limit of {MAX_RING_ATOMS}"
    return None


def _invalid(text: str, reason: str) -> Molecule:
    return Molecule(raw=text, valid=False, error=reason)


def parse_smiles(text: str) -> Molecule:
    """Validate and canonicalise SMILES; never raises on bad input, returns ``valid=False``.

    Requires RDKit (``pip install 'docvlm[chem]'``).
    """
    check_size(text)
    try:
        from rdkit import Chem
        from rdkit.Chem import rdMolDescriptors
    except ImportError as error:
        raise ImportError("parse_smiles needs RDKit: pip install 'docvlm[chem]'") from error

    smiles = text.strip()
    if not smiles:
        return _invalid(text, "empty output")
    if len(smiles) > MAX_SMILES_CHARS:
        return _invalid(text, f"longer than {MAX_SMILES_CHARS:,} characters")
    if any(ch.isspace() for ch in smiles):
        return _invalid(text, "whitespace inside the SMILES")
    bracket = _bracket_error(smiles)
    if bracket:
        return _invalid(text, bracket)

    with _rdkit_messages() as capture:
        try:
            # Unsanitised first, so that a chemistry problem is named rather than logged.
            rough = Chem.MolFromSmiles(smiles, sanitize=False)
            if rough is None:
                return _invalid(text, capture.messages[0] if capture.messages else "not SMILES")
            problems = Chem.DetectChemistryProblems(rough)
            if problems:
                return _invalid(text, problems[0].Message())
            rings = rough.GetNumBonds() - rough.GetNumAtoms() + len(Chem.GetMolFrags(rough))
            if rings > MAX_RINGS:
                return _invalid(text, f"{rings} rings, more than the limit of {MAX_RINGS}")
            # RDKit's own full parse: sanitised with stereo perceived (E/Z reaches the InChI).
            mol = Chem.MolFromSmiles(smiles)
            if mol is None:
                return _invalid(text, capture.messages[-1] if capture.messages else "not SMILES")
            atom = _isotope_error(mol) or _ring_error(mol)
            if atom:
                return _invalid(text, atom)
            inchi = Chem.MolToInchi(mol) or None
            return Molecule(
                raw=text,
                valid=True,
                smiles=Chem.MolToSmiles(mol),
                inchi=inchi,
                inchikey=Chem.InchiToInchiKey(inchi) if inchi else None,
                formula=rdMolDescriptors.CalcMolFormula(mol),
            )
        except Exception as error:  # RDKit raises its own (unexported) error types
            return _invalid(text, str(error).splitlines()[0] or "RDKit error")
