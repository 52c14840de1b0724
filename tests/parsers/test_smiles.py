from __future__ import annotations

from pathlib import Path

import pytest
from worst_cases import acene

from parsers import SmilesParseError, parse_smiles
from parsers.smiles import MAX_ISOTOPE_SHIFT, MAX_RING_ATOMS, MAX_RINGS, MAX_SMILES_CHARS

Chem = pytest.importorskip("rdkit.Chem")

STEREO_PAIRS = [
    ("F/C=C/F", "F/C=C\\F"),
    ("C/C=C/C(=O)O", "C/C=C\\C(=O)O"),
    ("C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O"),
    ("O[C@@H]1CC[C@H](O)CC1", "O[C@H]1CC[C@H](O)CC1"),
]


def _first_column(path: Path, column: int = 0) -> list[str]:
    lines = path.read_text().splitlines()
    rows = [line.split("\t") if "\t" in line else line.split() for line in lines]
    return [row[column] for row in rows if row and row[0] and not row[0].startswith("#")]


def corpus_smiles(corpus: Path) -> list[str]:
    """Every SMILES in the shared corpus, and the SMILES RDKit writes for every molfile."""
    molecules = corpus / "molecules"
    found = _first_column(molecules / "smiles/nci_first300.smi")
    found += _first_column(molecules / "smiles/zinc.leads.500.q.smi")
    found += _first_column(molecules / "images_with_mol/uspto/labels.tsv", 2)
    for name in (
        "decimer/TEST.txt",
        "decimer/caffeine.expected.tsv",
        "molscribe/example.expected.tsv",
    ):
        found += _first_column(molecules / "images_with_smiles" / name, 1)
    for molfile in sorted((molecules / "images_with_mol/uspto").glob("*.MOL")):
        found.append(Chem.MolToSmiles(Chem.MolFromMolFile(str(molfile))))
    return found


def assert_like_rdkit(text: str) -> None:
    expected = Chem.MolFromSmiles(text)
    molecule = parse_smiles(text)
    assert molecule.valid, (text, molecule.error)
    assert molecule.smiles == Chem.MolToSmiles(expected), text
    assert molecule.inchi == Chem.MolToInchi(expected), text
    assert molecule.inchikey == Chem.MolToInchiKey(expected), text


def test_every_corpus_molecule_equals_rdkits_own(corpus: Path) -> None:
    smiles = corpus_smiles(corpus)
    assert len(smiles) >= 830
    stereo = 0
    for text in smiles:
        if Chem.MolFromSmiles(text) is None:
            assert not parse_smiles(text).valid, text
            continue
        assert_like_rdkit(text)
        stereo += "/b" in (parse_smiles(text).inchi or "")
    assert stereo >= 5  # the corpus holds E/Z double bonds, so the check above covers them


@pytest.mark.parametrize(("first", "second"), STEREO_PAIRS)
def test_stereo_isomers_get_their_own_keys(first: str, second: str) -> None:
    assert_like_rdkit(first)
    assert_like_rdkit(second)
    assert parse_smiles(first).inchikey != parse_smiles(second).inchikey


def test_molfile_truth_gives_the_same_smiles(corpus: Path) -> None:
    folder = corpus / "molecules/images_with_mol/uspto"
    for row in (folder / "labels.tsv").read_text().splitlines():
        if row.startswith("#") or not row.strip():
            continue
        _, molfile, label = row.split("\t")[:3]
        truth = Chem.MolFromMolFile(str(folder / molfile))
        molecule = parse_smiles(label)
        assert molecule.smiles == Chem.MolToSmiles(truth) == label, row
        assert molecule.inchikey == Chem.MolToInchiKey(Chem.MolFromSmiles(label)), row


def test_open_babel_invalid_list_is_rejected(corpus: Path) -> None:
    lines = (corpus / "molecules/smiles/openbabel_invalid-smiles.txt").read_text().split("\n")
    for line in lines:
        molecule = parse_smiles(line)
        assert not molecule.valid, line
        assert molecule.error and molecule.smiles is None and molecule.inchikey is None


@pytest.mark.parametrize("text", ["[O-1000]", "[Mg+1000]", "C[N+256]C", "[O-24]", "[O-9]"])
def test_charge_overflow_is_rejected(text: str) -> None:
    molecule = parse_smiles(text)
    assert not molecule.valid
    atom = text[text.index("[") + 1 : text.index("]")]
    charge = atom.lstrip("OMgN")
    assert molecule.error == f"charge {charge} on [{atom}] is out of range"


def test_charge_at_the_limit_is_kept() -> None:
    assert parse_smiles("[O-8]").smiles == "[O-8]"
    assert parse_smiles("[O--]").smiles == "[O-2]"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[999999C]", "isotope 999999 on [999999C] is out of range"),
        ("[65548C]", "isotope 65548 on [65548C] is out of range"),  # RDKit would read [12C]
        ("[0C]", "isotope 0 on [0C] is out of range"),  # RDKit would read [C]
        ("[1000C]", "isotope 1000 on [1000C] is out of range"),
        (
            f"[{12 + MAX_ISOTOPE_SHIFT + 1}C]",
            f"isotope {12 + MAX_ISOTOPE_SHIFT + 1} on atom 0 (C) is out of range: "
            f"mass numbers within {MAX_ISOTOPE_SHIFT} of 12 are accepted",
        ),
        (
            "O[137U]",
            "isotope 137 on atom 1 (U) is out of range: mass numbers within 100 of 238 "
            "are accepted",
        ),
    ],
)
def test_isotope_out_of_range_is_rejected(text: str, reason: str) -> None:
    molecule = parse_smiles(text)
    assert not molecule.valid
    assert molecule.error == reason


@pytest.mark.parametrize("text", ["[13CH4]", "[2H]O[2H]", f"[{12 + MAX_ISOTOPE_SHIFT}C]", "[138U]"])
def test_isotopes_in_range_keep_their_mass(text: str) -> None:
    assert_like_rdkit(text)
    expected = Chem.MolFromSmiles(text)
    masses = [a.GetIsotope() for a in parse_smiles(text).to_rdkit().GetAtoms()]
    assert masses == [a.GetIsotope() for a in expected.GetAtoms()]


def test_every_element_isotope_window_is_faithful_in_inchi() -> None:
    # Within the accepted window, InChI's isotope layer holds the mass number exactly.
    table = Chem.GetPeriodicTable()
    for number in (1, 6, 8, 17, 26, 66, 92, 118):
        symbol = table.GetElementSymbol(number)
        average = int(table.GetAtomicWeight(number) + 0.5)
        for mass in (max(1, average - MAX_ISOTOPE_SHIFT), average + MAX_ISOTOPE_SHIFT):
            molecule = parse_smiles(f"[{mass}{symbol}]")
            assert molecule.valid, (symbol, mass, molecule.error)
            shift = mass - average
            assert molecule.inchi is not None
            assert molecule.inchi.endswith(f"/i1{shift:+d}"), (symbol, mass, molecule.inchi)


def test_empty_whitespace_and_reasons() -> None:
    assert parse_smiles("").error == "empty output"
    assert parse_smiles("  \n").error == "empty output"
    assert parse_smiles("CC O").error == "whitespace inside the SMILES"
    assert parse_smiles(" CCO\n").smiles == "CCO"  # outer whitespace is not part of it
    bad = parse_smiles("C1CC")
    assert not bad.valid and bad.error == "unclosed ring for input: 'C1CC'"
    with pytest.raises(SmilesParseError, match="ring"):
        bad.to_rdkit()
    syntax = parse_smiles("C(C")
    assert syntax.error is not None and syntax.error.startswith("extra open parentheses")


def test_valence_problem_is_named() -> None:
    molecule = parse_smiles("C(C)(C)(C)(C)C")
    assert not molecule.valid
    assert molecule.error == "Explicit valence for atom # 0 C, 5, is greater than permitted"


def test_fields_filled_and_molblock_on_demand() -> None:
    molecule = parse_smiles("C[C@@H](N)C(=O)O")
    assert molecule.smiles == "C[C@@H](N)C(=O)O"
    assert molecule.formula == "C3H7NO2"
    # D-alanine
    assert molecule.inchi == "InChI=1S/C3H7NO2/c1-2(4)3(5)6/h2H,4H2,1H3,(H,5,6)/t2-/m1/s1"
    assert molecule.to_rdkit().GetNumAtoms() == 6
    # the molfile is not computed by the parser, nor serialised
    assert "molblock" not in type(molecule).model_fields
    assert "molblock" not in molecule.model_dump()
    block = molecule.to_molblock()
    assert "V2000" in block and block == molecule.molblock
    back = Chem.MolFromMolBlock(block)
    assert Chem.MolToSmiles(back) == molecule.smiles  # stereo survives the 2-D coordinates
    assert parse_smiles("C1CC").molblock is None


def test_length_limit() -> None:
    longest = parse_smiles("C" * MAX_SMILES_CHARS)
    assert longest.valid and longest.formula == f"C{MAX_SMILES_CHARS}H{2 * MAX_SMILES_CHARS + 2}"
    over = parse_smiles("C" * (MAX_SMILES_CHARS + 1))
    assert not over.valid and over.error == f"longer than {MAX_SMILES_CHARS:,} characters"


def test_ring_limits() -> None:
    assert Chem.MolFromSmiles(acene(MAX_RINGS)).GetRingInfo().NumRings() == MAX_RINGS
    assert_like_rdkit(acene(MAX_RINGS))
    over = parse_smiles(acene(MAX_RINGS + 1))
    assert over.error == f"{MAX_RINGS + 1} rings, more than the limit of {MAX_RINGS}"
    ring = "C1" + "C" * (MAX_RING_ATOMS - 1) + "1"
    assert_like_rdkit(ring)
    big = parse_smiles("C1" + "C" * MAX_RING_ATOMS + "1")
    limit = f"more than the limit of {MAX_RING_ATOMS}"
    assert big.error == f"a ring of {MAX_RING_ATOMS + 1} atoms, {limit}"
    # many separate rings count together
    assert parse_smiles("C1CC1." * MAX_RINGS + "C").valid
    assert not parse_smiles("C1CC1." * (MAX_RINGS + 1) + "C").valid


def test_a_valence_error_gives_rdkits_own_reason() -> None:
    molecule = parse_smiles("C(C)(C)(C)(C)C")
    assert not molecule.valid
    assert molecule.error == "Explicit valence for atom # 0 C, 5, is greater than permitted"
