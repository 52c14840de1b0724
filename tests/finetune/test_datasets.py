"""Training data: every converter's target read back by the task's parser gives the source's
table, molecule or score (checked with the field's tools), and synthetic data is seeded."""

from __future__ import annotations

import html
import json
import random
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from docvlm.cli import app
from docvlm.errors import InputError
from docvlm.finetune import kern_records, kern_target, molecule_records, pubtabnet_records
from docvlm.finetune.datasets import pubtabnet_target
from parsers import parse_smiles, parse_table

PUBTABNET = "tables/pubtabnet/examples/PubTabNet_Examples.jsonl"
#: A macrocycle whose ring double-bond stereo RDKit does not write to SMILES at all.
RING_STEREO_LOST = {"US07314511-20080101-C00002.MOL"}


def _annotations(corpus: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (corpus / PUBTABNET).read_text().splitlines()]


def _expected_grid(item: dict) -> tuple[int, list[tuple[int, int, str]]]:  # type: ignore[type-arg]
    """Rows, and (rowspan, colspan, plain text) per cell, read from the annotation itself."""
    tokens = item["html"]["structure"]["tokens"]
    rows = tokens.count("<tr>")
    spans = []
    for index, token in enumerate(tokens):
        if token == "<td>":
            spans.append((1, 1))
        elif token == "<td":
            attrs = "".join(tokens[index + 1 : tokens.index(">", index)])
            row = re.search(r'rowspan="(\d+)"', attrs)
            col = re.search(r'colspan="(\d+)"', attrs)
            spans.append((int(row.group(1)) if row else 1, int(col.group(1)) if col else 1))
    texts = []
    for cell in item["html"]["cells"]:
        marked = "".join(cell["tokens"])
        plain = re.sub(r"</?(b|i|sup|sub)>", "", re.sub(r"<br/?>", " ", marked))
        texts.append(" ".join(plain.split()))
    return rows, [(r, c, t) for (r, c), t in zip(spans, texts, strict=True)]


@pytest.mark.parametrize("coords", [False, True])
def test_pubtabnet_targets_parse_back_to_the_annotated_tables(corpus: Path, coords: bool) -> None:
    items = _annotations(corpus)
    records = list(pubtabnet_records(corpus / PUBTABNET, coords=coords))
    assert len(records) == len(items) == 20
    for item, record in zip(items, records, strict=True):
        table = parse_table(record["target"])
        rows, cells = _expected_grid(item)
        assert table.shape[0] == rows, item["filename"]
        got = [(c.rowspan, c.colspan, " ".join(c.text.split())) for c in table.cells]
        assert got == cells, item["filename"]
        assert ("coords=" in record["target"]) == coords
        if coords:
            with Image.open(record["image"]) as image:
                side = max(image.size)
            annotated = [c["bbox"] for c in item["html"]["cells"] if c.get("bbox")]
            boxes = [c.box for c in parse_table(record["target"], side, side).cells if c.box]
            assert len(boxes) == len(annotated)
            one_bin = side / 1024
            for box, (x0, y0, x1, y1) in zip(boxes, annotated, strict=True):
                assert abs(box.x0 - x0) <= one_bin and abs(box.y0 - y0) <= one_bin
                assert abs(box.x1 - x1) <= one_bin and abs(box.y1 - y1) <= one_bin


def test_pubtabnet_text_is_escaped_and_markup_kept(corpus: Path) -> None:
    item = {
        "html": {
            "structure": {
                "tokens": [
                    "<tbody>",
                    "<tr>",
                    "<td>",
                    "</td>",
                    "<td",
                    ' colspan="2"',
                    ">",
                    "</td>",
                    "</tr>",
                    "</tbody>",
                ]
            },
            "cells": [{"tokens": ["<b>", "a", "<", "b", "</b>"]}, {"tokens": ["&", " ", ">", "1"]}],
        }
    }
    target = pubtabnet_target(item)
    assert (
        target == '<tbody><tr><td><b>a&lt;b</b></td><td colspan="2">&amp; &gt;1</td></tr></tbody>'
    )
    table = parse_table(target)
    assert [c.text for c in table.cells] == ["a<b", "& >1"] and table.shape == (1, 3)
    assert html.unescape("&amp;") == "&"


def test_pubtabnet_bad_lines_are_named(tmp_path: Path, corpus: Path) -> None:
    good = (corpus / PUBTABNET).read_text().splitlines()[0]
    path = tmp_path / "a.jsonl"
    path.write_text(good + '\n{"filename": "x.png", "html": {"cells": []}}\n')
    images = corpus / "tables/pubtabnet/examples"
    with pytest.raises(InputError, match=r"a.jsonl:2: no 'structure' field"):
        list(pubtabnet_records(path, images=images))
    skipped: list[str] = []
    assert len(list(pubtabnet_records(path, images=images, skipped=skipped))) == 1
    assert skipped == [f"{path}:2: no 'structure' field"]


def test_uspto_molfiles_become_their_canonical_smiles(corpus: Path) -> None:
    from rdkit import Chem

    folder = corpus / "molecules/images_with_mol/uspto"
    records = list(molecule_records(folder))
    assert len(records) == len(list(folder.glob("*.TIF"))) == 15
    for record in records:
        molfile = Path(record["image"]).with_suffix(".MOL")
        expected = Chem.MolFromMolFile(str(molfile))
        parsed = Chem.MolFromSmiles(record["target"])
        key, truth = Chem.MolToInchiKey(parsed), Chem.MolToInchiKey(expected)
        assert key[:14] == truth[:14], molfile.name  # the same skeleton
        # full key, stereo included, except where RDKit's SMILES writer itself drops it
        assert (key == truth) == (molfile.name not in RING_STEREO_LOST), molfile.name
        assert record["target"] == Chem.MolToSmiles(expected)
        assert parse_smiles(record["target"]).smiles == record["target"]  # the task's parser


@pytest.mark.parametrize(
    ("folder", "labels"),
    [
        ("images_with_smiles/decimer", "TEST.txt"),
        ("images_with_smiles/decimer", "caffeine.expected.tsv"),
        ("images_with_smiles/molscribe", "example.expected.tsv"),
        ("images_with_mol/uspto", "labels.tsv"),
    ],
)
def test_smiles_tables_become_canonical_smiles(corpus: Path, folder: str, labels: str) -> None:
    from rdkit import Chem

    root = corpus / "molecules" / folder
    rows = [
        line.split("\t")
        for line in (root / labels).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    records = list(molecule_records(root, labels=root / labels))
    assert len(records) == len(rows)
    for record, row in zip(records, rows, strict=True):
        smiles = row[2] if len(row) > 2 else row[1]
        assert Path(record["image"]).name == row[0]
        assert record["target"] == Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
        assert parse_smiles(record["target"]).smiles == record["target"]


def test_molecule_pairs_without_labels_are_left_out(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), "white").save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes((tmp_path / "a.png").read_bytes())
    (tmp_path / "b.smi").write_text("C1CC1 cyclopropane\n")
    skipped: list[str] = []
    records = list(molecule_records(tmp_path, skipped=skipped))
    assert [r["target"] for r in records] == ["C1CC1"]
    assert skipped == [f"{tmp_path / 'a.png'}: no MOL, SDF or .smi file beside it"]


def _notes(kern: str) -> list[tuple[str, float]]:
    from music21 import converter

    score = converter.parseData(kern, format="humdrum")
    return [
        (" ".join(p.nameWithOctave for p in n.pitches), float(n.quarterLength))
        for n in score.flatten().notes
    ]


def test_kern_targets_keep_every_note(corpus: Path, tmp_path: Path) -> None:
    from parsers import kern_to_ekern

    for path in sorted((corpus / "music/kern").glob("*.krn")):
        original = path.read_text()
        target = kern_target(original)
        assert not any(line.startswith("!") for line in target.splitlines())
        assert _notes(target) == _notes(original), path.name
        assert kern_target(kern_to_ekern(original)) == target  # ekern reads as the same kern
        (tmp_path / path.name).write_text(original)
        Image.new("RGB", (8, 8), "white").save(tmp_path / f"{path.stem}.png")
    skipped: list[str] = []
    records = list(kern_records(tmp_path, skipped=skipped))
    # every real score is a record, the whole Paderewski valse (1,000 lines) too: a target
    # longer than the task allows is left out by its token count when training starts
    assert skipped == [] and len(records) == 4
    assert [r["target"] for r in records] == [
        kern_target(p.read_text()) for p in sorted((corpus / "music/kern").glob("*.krn"))
    ]


def test_synthetic_molecules_are_seeded_and_exact(tmp_path: Path) -> None:
    pytest.importorskip("rdkit")
    from rdkit import Chem

    from docvlm.finetune.synthetic import draw_molecule, synthesize

    smiles = ["OC(=O)c1ccccc1O", "C[C@H](N)C(=O)O", "F/C=C/F"]
    written, skipped = synthesize("molecules", [*smiles, "C1CC"], tmp_path / "a", 4, seed=5)
    assert written == 3 and skipped and "C1CC" in skipped[0]
    assert synthesize("molecules", smiles, tmp_path / "b", 3, seed=5)[0] == 3
    for name in ("molecules-000000.png", "molecules-000001.png"):
        assert (tmp_path / "a/images" / name).read_bytes() == (
            tmp_path / "b/images" / name
        ).read_bytes()
    records = [json.loads(x) for x in (tmp_path / "a/train.jsonl").read_text().splitlines()]
    assert [r["target"] for r in records] == [
        Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in smiles
    ]
    assert records[0]["image"] == "images/molecules-000000.png"
    first, _ = draw_molecule(smiles[0], random.Random(1))
    second, _ = draw_molecule(smiles[0], random.Random(2))
    assert first.tobytes() != second.tobytes()  # styles vary with the seed


def test_synthetic_music_excerpts_hold_every_note(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("verovio")
    from docvlm.finetune.synthetic import kern_excerpts, synthesize

    source = (corpus / "music/kern/polish_holland_zweite-menuet.krn").read_text()
    excerpts = kern_excerpts(source, measures=4)
    assert len(excerpts) == 3
    assert [n for e in excerpts for n in _notes(e)] == _notes(kern_target(source))
    assert all("*clefF4" in e and "*M3/4" in e for e in excerpts)  # carried into each
    written, _ = synthesize("music", excerpts[:1], tmp_path, 1, seed=1)
    record = json.loads((tmp_path / "train.jsonl").read_text())
    assert written == 1 and record["target"] == kern_target(excerpts[0])
    with Image.open(tmp_path / record["image"]) as image:
        assert image.width > 400 and image.getextrema()[0][0] < 100  # ink on the page


def test_synthetic_tables_target_the_drawn_grid(tmp_path: Path) -> None:
    from docvlm.finetune.tables import random_table_html, render_table

    for seed in range(5):
        markup = random_table_html(random.Random(seed))
        image, target = render_table(markup, random.Random(seed), noise=0.0, coords=True)
        side = max(image.size)  # coords are bins of the white square the model sees
        source, drawn = parse_table(markup), parse_table(target, side, side)
        assert drawn.shape == source.shape and drawn.header_rows == source.header_rows
        assert [c.text for c in drawn.cells] == [c.text for c in source.cells]
        for cell in drawn.cells:
            assert (cell.box is not None) == bool(cell.text)
            if cell.box is not None:  # the box has ink in it
                crop = image.convert("L").crop(
                    (int(cell.box.x0), int(cell.box.y0), int(cell.box.x1) + 1, int(cell.box.y1) + 1)
                )
                assert crop.getextrema()[0] < 128


def test_data_commands(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    result = CliRunner().invoke(
        app, ["data", "pubtabnet", str(corpus / PUBTABNET), "--out", str(out), "--coords"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 20 records" in result.stderr
    first = json.loads(out.read_text().splitlines()[0])
    assert (out.parent / first["image"]).resolve() == (
        corpus / "tables/pubtabnet/examples" / "PMC4840965_004_00.png"
    ).resolve()
    result = CliRunner().invoke(
        app, ["data", "synth-tables", "--out", str(tmp_path / "t"), "--count", "2"]
    )
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "t/train.jsonl").read_text().splitlines()) == 2
