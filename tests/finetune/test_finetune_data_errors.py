"""Data commands on bad input: each problem is one line naming the file and the cause, a
batch goes on past bad items (listed as "left out"), and exit code 1 when nothing usable
was written. Also: synthetic tables teach the same target as the PubTabNet annotation."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from docvlm.cli import app
from docvlm.errors import InputError
from docvlm.finetune.data import check_examples, read_examples
from parsers import parse_table

PUBTABNET = "tables/pubtabnet/examples/PubTabNet_Examples.jsonl"
INVALID_SMILES = "molecules/smiles/openbabel_invalid-smiles.txt"
INVALID_KERN = "music/kern_invalid/humdrumR_InvalidFile.krn"


def _run(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["data", *map(str, args)])
    return result.exit_code, result.stderr.splitlines()


def _records(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _few(corpus: Path, tmp_path: Path, n: int = 5) -> Path:
    few = tmp_path / "few.jsonl"
    few.write_text("\n".join((corpus / PUBTABNET).read_text().splitlines()[:n]) + "\n")
    return few


def test_pubtabnet_records_without_images_are_left_out(corpus: Path, tmp_path: Path) -> None:
    few = _few(corpus, tmp_path)
    names = [json.loads(line)["filename"] for line in few.read_text().splitlines()]
    empty = tmp_path / "images"
    empty.mkdir()
    out = tmp_path / "X.jsonl"
    code, lines = _run("pubtabnet", few, "--images", empty, "--out", out)
    assert code == 1 and not out.exists()
    assert lines[:5] == [
        f"left out: {few}:{i}: no such image {empty.resolve() / name}"
        for i, name in enumerate(names, start=1)
    ]
    assert lines[5:] == [f"error: {few}: no usable record (5 left out)"]
    # one image present: it is written, the four others are left out, exit 0
    (tmp_path / "images" / names[2]).symlink_to(corpus / PUBTABNET.rsplit("/", 1)[0] / names[2])
    code, lines = _run("pubtabnet", few, "--images", empty, "--out", out)
    assert code == 0 and lines[-1] == f"wrote 1 records to {out} (4 left out)"
    assert [Path(r["image"]).name for r in _records(out)] == [names[2]]
    code, lines = _run("pubtabnet", few, "--images", tmp_path / "nowhere", "--out", out)
    assert (code, lines) == (1, [f"error: {tmp_path / 'nowhere'}: no such folder (--images)"])


def test_molecule_labels_naming_missing_images(corpus: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.tsv"
    labels.write_text("a.png\tCCO\nb.png\tc1ccccc1\n")
    Image.new("RGB", (8, 8), "white").save(tmp_path / "b.png")
    out = tmp_path / "m.jsonl"
    code, lines = _run("molecules", tmp_path, "--labels", labels, "--out", out)
    assert code == 0 and lines[0] == f"left out: {labels}: no such image {tmp_path / 'a.png'}"
    assert [r["target"] for r in _records(out)] == ["c1ccccc1"]
    (tmp_path / "b.png").unlink()
    code, lines = _run("molecules", tmp_path, "--labels", labels, "--out", out)
    assert code == 1 and lines[-1] == f"error: {labels}: no usable record (2 left out)"
    labels.write_text("# nothing\n")
    code, lines = _run("molecules", tmp_path, "--labels", labels, "--out", out)
    assert (code, lines) == (1, [f"error: {labels}: no rows of image name and SMILES"])


def test_zero_output_says_why(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "X.jsonl"
    annotations = corpus / PUBTABNET
    code, lines = _run("pubtabnet", annotations, "--split", "test", "--out", out)
    message = f"error: {annotations}: no record has split 'test' (splits found: train)"
    assert (code, lines) == (1, [message])
    mixed = tmp_path / "mixed.jsonl"
    rows = (corpus / PUBTABNET).read_text().splitlines()[:2]
    second = json.loads(rows[1]) | {"split": "val"}
    mixed.write_text(rows[0] + "\n" + json.dumps(second) + "\n")
    code, lines = _run("pubtabnet", mixed, "--split", "test", "--out", out)
    assert lines == [f"error: {mixed}: no record has split 'test' (splits found: train, val)"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert _run("pubtabnet", empty, "--out", out) == (1, [f"error: {empty}: no annotations"])
    folder = tmp_path / "scores"
    folder.mkdir()
    (folder / "a.krn").write_text("**kern\n4c\n*-\n")
    looked = "looked for .png, .jpg, .jpeg, .tif, .tiff, .bmp, .gif, .webp"
    for command in ("kern", "molecules"):
        code, lines = _run(command, folder, "--out", out)
        assert (code, lines) == (1, [f"error: {folder}: no images ({looked})"])
    assert not out.exists()


def test_synth_molecules_names_bad_smiles_quietly(
    corpus: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("rdkit")
    bad = tmp_path / "bad.smi"
    bad.write_text("C1CC\n[C==C] x\nQ\n")
    code, lines = _run("synth-molecules", bad, "--out", tmp_path / "s", "-n", "9")
    assert code == 1
    assert lines == [
        f"left out: {bad}: RDKit rejects the SMILES 'C1CC'",
        f"left out: {bad}: RDKit rejects the SMILES '[C==C]'",
        f"left out: {bad}: RDKit rejects the SMILES 'Q'",
        f"error: {bad}: nothing drawn (3 left out)",
    ]
    # RDKit's own log (to stderr, or to Python logging once rdkit.RDLogger is set up): silenced
    assert "Parse Error" not in capfd.readouterr().err + caplog.text
    # a mixed file: the good SMILES are drawn, the bad ones listed once, exit 0
    bad.write_text("C1CC\nCCO\n")
    code, lines = _run("synth-molecules", bad, "--out", tmp_path / "t", "-n", "4")
    assert code == 0 and lines[0] == f"left out: {bad}: RDKit rejects the SMILES 'C1CC'"
    assert [r["target"] for r in _records(tmp_path / "t/train.jsonl")] == ["CCO", "CCO"]
    # a run that draws nothing leaves the earlier run's records in place
    only_bad = tmp_path / "only_bad.smi"
    only_bad.write_text("C1CC\n")
    code, _ = _run("synth-molecules", only_bad, "--out", tmp_path / "t", "-n", "2")
    assert code == 1 and len(_records(tmp_path / "t/train.jsonl")) == 2
    # RDKit's log is on again afterwards
    from rdkit import Chem

    Chem.MolFromSmiles("C1CC")
    assert "SMILES Parse Error" in capfd.readouterr().err + caplog.text
    empty = corpus / "molecules/smiles/rdkit_empty_crlf.smi"
    code, lines = _run("synth-molecules", empty, "--out", tmp_path / "u")
    assert (code, lines) == (1, [f"error: {empty}: no SMILES in it"])
    code, lines = _run("synth-molecules", corpus / INVALID_SMILES, "--out", tmp_path / "v")
    assert all(line.startswith("left out: ") for line in lines[:20])


def test_synth_music_names_the_kern_file_and_the_parse_error(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("verovio")
    invalid = corpus / INVALID_KERN
    code, lines = _run("synth-music", invalid, "--out", tmp_path / "m", "-n", "1")
    assert code == 1 and len(lines) == 1
    error = lines[0]
    assert re.fullmatch(
        rf"error: {re.escape(str(invalid))}: no excerpt could be cut "
        r"\(music21 could not read the kern: .+\)",
        lines[0],
    )
    good = corpus / "music/kern/polish_holland_zweite-menuet.krn"
    code, lines = _run("synth-music", invalid, good, "--out", tmp_path / "m", "-n", "1")
    assert code == 0 and lines[0] == "left out: " + error.removeprefix("error: ")
    assert len(_records(tmp_path / "m/train.jsonl")) == 1
    text = tmp_path / "notes.krn"
    text.write_text("just some text\n")
    code, lines = _run("synth-music", text, "--out", tmp_path / "n")
    assert (code, lines) == (1, [f"error: {text}: not kern: no **kern header line"])


def _cells(markup: str) -> list[tuple[int, int, int, int, str, str, bool]]:
    table = parse_table(markup)
    return [
        (c.row, c.col, c.rowspan, c.colspan, c.content, c.text, c.is_header) for c in table.cells
    ]


def test_synthetic_tables_keep_the_annotations_inline_markup(corpus: Path, tmp_path: Path) -> None:
    annotations = corpus / PUBTABNET
    count = len(annotations.read_text().splitlines())
    code, _ = _run("pubtabnet", annotations, "--out", tmp_path / "p.jsonl")
    assert code == 0
    code, lines = _run(
        "synth-tables", "--from", annotations, "--out", tmp_path / "s", "-n", count, "--noise", 0
    )
    assert code == 0, lines
    real = _records(tmp_path / "p.jsonl")
    drawn = _records(tmp_path / "s/train.jsonl")
    assert len(real) == len(drawn) == count == 20
    marked = 0
    for source, synthetic in zip(real, drawn, strict=True):
        assert _cells(synthetic["target"]) == _cells(source["target"]), source["image"]
        marked += "<b>" in synthetic["target"]
    assert marked >= 10  # the corpus's bold headers are in the synthetic targets


def test_synthetic_tables_draw_bold_only_what_the_target_says(tmp_path: Path) -> None:
    import random

    from docvlm.finetune.tables import random_table_html, render_table

    markup = random_table_html(random.Random(3))
    assert "<td><b>" in markup
    _, target = render_table(markup, random.Random(3), noise=0.0)
    table = parse_table(target)
    assert all(c.content.startswith("<b>") for c in table.cells if c.is_header and c.text)
    assert not any("<b>" in c.content for c in table.cells if not c.is_header)
    # the same words drawn bold and plain differ in ink; bold is only where <b> says
    plain = "<thead><tr><td>Total</td></tr></thead>"
    bold = "<thead><tr><td><b>Total</b></td></tr></thead>"
    ink = []
    for source in (plain, bold):
        image, target = render_table(source, random.Random(0), noise=0.0)
        assert _cells(target) == _cells(source)
        ink.append(sum(image.convert("L").histogram()[:128]))
    assert ink[1] > ink[0] * 1.15


def test_finetune_data_names_missing_images_and_non_json(tmp_path: Path) -> None:
    data = tmp_path / "sub" / "data.jsonl"
    data.parent.mkdir()
    data.write_text('{"image": "../PMC4517499_004_00.png", "target": "<td>a</td>"}\n')
    pairs = read_examples(data)
    kept, skipped = check_examples(pairs, len, 100)
    assert kept == []
    assert skipped == [f"{(tmp_path / 'PMC4517499_004_00.png').resolve()}: no such file"]
    assert os.path.isabs(skipped[0].split(":")[0])
    data.write_text('{"image": "a.png", "target": "x"}\n\n\nnot json\n')
    with pytest.raises(InputError) as caught:
        read_examples(data)
    assert str(caught.value).startswith(f"{data}: line 4: not JSON (Expecting value")
    data.write_text('{"image": "a.png"}\n')
    with pytest.raises(InputError, match=r"line 1: needs \{'image', 'target'\}"):
        read_examples(data)


def test_a_run_goes_on_past_bad_lines_and_names_them(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"image": "a.png", "target": "x"}\nnot json\n{"image": "b.png"}\n')
    skipped: list[str] = []
    assert read_examples(data, skipped) == [(tmp_path / "a.png", "x")]
    assert skipped[0] == f"{data}: line 2: not JSON (Expecting value: line 1 column 1 (char 0))"
    assert skipped[1].startswith(f"{data}: line 3: needs {{'image', 'target'}}")
    data.write_text("not json\n{}\n")  # nothing usable: an error, whatever skipped is
    with pytest.raises(InputError, match=r"line 1: not JSON .* \(and 1 more\)"):
        read_examples(data, [])
