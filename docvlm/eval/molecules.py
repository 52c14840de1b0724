"""Molecule metrics: exact match on canonical SMILES and InChIKey, Tanimoto similarity.

Invalid predictions count as misses (similarity 0), as in MolScribe's evaluation.
"""

from __future__ import annotations

from parsers import parse_smiles

__all__ = ["inchikey_match", "smiles_exact_match", "tanimoto"]


def smiles_exact_match(pred: str, true: str) -> bool:
    """True when both parse and their RDKit canonical SMILES (stereo kept) are equal."""
    p, t = parse_smiles(pred), parse_smiles(true)
    return p.valid and t.valid and p.smiles == t.smiles


def inchikey_match(pred: str, true: str) -> bool:
    """True when both parse to the same standard InChIKey (tautomer-tolerant)."""
    p, t = parse_smiles(pred), parse_smiles(true)
    return p.valid and t.valid and p.inchikey is not None and p.inchikey == t.inchikey


def tanimoto(pred: str, true: str, radius: int = 2, bits: int = 2048) -> float:
    """Tanimoto similarity of Morgan fingerprints (ECFP4 by default); 0.0 if either fails."""
    from rdkit import DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    p, t = parse_smiles(pred), parse_smiles(true)
    if not (p.valid and t.valid):
        return 0.0
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    similarity: float = DataStructs.TanimotoSimilarity(
        generator.GetFingerprint(p.to_rdkit()), generator.GetFingerprint(t.to_rdkit())
    )
    return similarity
