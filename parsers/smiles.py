"""SMILES output to a molecule validated and canonicalised by RDKit (the ``chem`` extra)."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from pydantic import Field

from parsers.base import Frozen, SmilesParseError, check_size

if TYPE_CHECKING:
    from rdkit.Chem import Mol

__all__ = ["MAX_ABS_CHARGE", "MAX_SMILES_CHARS", "Molecule", "parse_smiles"]

#: Largest formal charge on one atom accepted. RDKit keeps charges in 8 bits, so
#: ``[O-1000]`` silently becomes ``[O+24]``; no real structure needs more than this.
MAX_ABS_CHARGE = 8
#: SMILES longer than this are refused (the molecule task writes at most 256 tokens).
MAX_SMILES_CHARS = 10_000

_BRACKET = re.compile(r"\[([^\[\]]{1,64})\]")
_STAMP = re.compile(r"^\[\d\d:\d\d:\d\d\] ")
_CHARGE = re.compile(r"([+-])(\d{1,12})(?::\d+)?$")


class Molecule(Frozen):
    """A molecule read from SMILES; ``valid`` says whether RDKit accepted it."""

    raw: str = Field(description="the text the model wrote")
    valid: bool = Field(description="RDKit parsed and sanitised the SMILES")
    smiles: str | None = Field(default=None, description="RDKit canonical SMILES, stereo kept")
    inchi: str | None = Field(default=None, description="standard InChI")
    inchikey: str | None = Field(default=None, description="standard InChIKey")
    formula: str | None = Field(default=None, description="molecular formula (Hill order)")
    molblock: str | None = Field(default=None, description="V2000 molfile with 2D coordinates")
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


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().strip()
        if message:
            first = _STAMP.sub("", message.splitlines()[0])
            self.messages.append(first.removeprefix("SMILES Parse Error: "))


def _charge_error(smiles: str) -> str | None:
    for atom in _BRACKET.findall(smiles):
        match = _CHARGE.search(atom)
        if match and int(match.group(2)) > MAX_ABS_CHARGE:
            return f"charge {match.group(1)}{match.group(2)} on [{atom}] is out of range"
    return None


def parse_smiles(text: str) -> Molecule:
    """Validate and canonicalise SMILES; never raises on bad input, returns ``valid=False``.

    Requires RDKit (``pip install 'docvlm[chem]'``).
    """
    check_size(text)
    try:
        from rdkit import Chem, rdBase
        from rdkit.Chem import rdMolDescriptors
    except ImportError as error:
        raise ImportError("parse_smiles needs RDKit: pip install 'docvlm[chem]'") from error

    smiles = text.strip()
    if not smiles:
        return Molecule(raw=text, valid=False, error="empty output")
    if len(smiles) > MAX_SMILES_CHARS:
        return Molecule(raw=text, valid=False, error=f"longer than {MAX_SMILES_CHARS} characters")
    if any(ch.isspace() for ch in smiles):
        return Molecule(raw=text, valid=False, error="whitespace inside the SMILES")
    charge = _charge_error(smiles)
    if charge:
        return Molecule(raw=text, valid=False, error=charge)

    rdBase.LogToPythonLogger()
    logger = logging.getLogger("rdkit")
    capture = _Capture()
    # RDKit's own logger writes to stderr; while parsing, its records go to `capture` only.
    saved_handlers, saved_propagate = logger.handlers[:], logger.propagate
    logger.handlers = [capture]
    logger.propagate = False
    try:
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        if mol is None:
            reason = capture.messages[0] if capture.messages else "not valid SMILES"
            return Molecule(raw=text, valid=False, error=reason)
        problems = Chem.DetectChemistryProblems(mol)
        if problems:
            return Molecule(raw=text, valid=False, error=problems[0].Message())
        Chem.SanitizeMol(mol)
        if any(abs(atom.GetFormalCharge()) > MAX_ABS_CHARGE for atom in mol.GetAtoms()):
            return Molecule(raw=text, valid=False, error="formal charge out of range")
        inchi = Chem.MolToInchi(mol) or None
        return Molecule(
            raw=text,
            valid=True,
            smiles=Chem.MolToSmiles(mol),
            inchi=inchi,
            inchikey=Chem.InchiToInchiKey(inchi) if inchi else None,
            formula=rdMolDescriptors.CalcMolFormula(mol),
            molblock=Chem.MolToMolBlock(mol),
        )
    except Exception as error:  # RDKit raises its own (unexported) error types
        return Molecule(raw=text, valid=False, error=str(error).splitlines()[0] or "RDKit error")
    finally:
        logger.handlers = saved_handlers
        logger.propagate = saved_propagate
