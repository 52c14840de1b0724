from __future__ import annotations

from pathlib import Path

import pytest

from parsers import SmilesParseError, parse_smiles

Chem = pytest.importorskip("rdkit.Chem")


def _smiles_lines(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def test_real_smiles_canonicalise_like_rdkit(corpus: Path) -> None:
    folder = corpus / "molecules/smiles"
    smiles = _smiles_lines(folder / "nci_first300.smi") + _smiles_lines(
        folder / "zinc.leads.500.q.smi"
    )
    assert len(smiles) == 800
    for text in smiles:
        expected = Chem.MolFromSmiles(text)
        molecule = parse_smiles(text)
        if expected is None:
            assert not molecule.valid
            continue
        assert molecule.valid, (text, molecule.error)
        assert molecule.smiles == Chem.MolToSmiles(expected)
        assert molecule.inchikey and len(molecule.inchikey) == 27


def test_open_babel_invalid_list_is_rejected(corpus: Path) -> None:
    lines = (corpus / "molecules/smiles/openbabel_invalid-smiles.txt").read_text().split("\n")
    for line in lines:
        molecule = parse_smiles(line)
        assert not molecule.valid, line
        assert molecule.error


@pytest.mark.parametrize("text", ["[O-1000]", "[Mg+1000]", "C[N+256]C", "[O-24]"])
def test_charge_overflow_is_rejected(text: str) -> None:
    molecule = parse_smiles(text)
    assert not molecule.valid
    assert "charge" in (molecule.error or "")


def test_empty_and_reason() -> None:
    assert parse_smiles("").error == "empty output"
    bad = parse_smiles("C1CC")
    assert not bad.valid and "ring" in (bad.error or "")
    with pytest.raises(SmilesParseError):
        bad.to_rdkit()


def test_stereo_is_kept_and_fields_filled() -> None:
    molecule = parse_smiles("C[C@@H](N)C(=O)O")
    assert molecule.smiles == "C[C@@H](N)C(=O)O"
    assert molecule.formula == "C3H7NO2"
    assert molecule.inchi and molecule.inchi.startswith("InChI=1S/")
    assert molecule.molblock and "V2000" in molecule.molblock
    assert molecule.to_rdkit().GetNumAtoms() == 6


def test_uspto_labels_parse(corpus: Path) -> None:
    folder = corpus / "molecules/images_with_mol/uspto"
    checked = 0
    for row in (folder / "labels.tsv").read_text().splitlines():
        if row.startswith("#") or not row.strip():
            continue
        _, molfile, label = row.split("\t")[:3]
        truth = Chem.MolToSmiles(Chem.MolFromMolFile(str(folder / molfile)))
        molecule = parse_smiles(label)
        assert molecule.valid and molecule.smiles == truth == label, row
        checked += 1
    assert checked >= 10
