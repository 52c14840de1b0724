"""From corrections to a checkpoint (docs/corrections.md): ``docvlm data corrections``
writes the crop the model saw and the corrected target, and ``docvlm finetune --data``
trains on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from answered_convert import answering_client, pubtabnet_tables
from PIL import Image, ImageChops
from typer.testing import CliRunner

from docvlm import Document
from docvlm.archive.edits import Correction
from docvlm.archive.output import Output
from docvlm.cli import app
from docvlm.reading.regions import crop_square
from parsers import Box, parse_table

USPTO = "molecules/images_with_mol/uspto"


def _convert(
    answers: dict[str, dict[str, str]], source: Path, out: Path, task: str, formats: str = "md"
) -> None:
    client = answering_client(answers)
    documents = list(
        client.convert_many([source], tasks=[task], out=f"{out}/", formats=formats.split(","))
    )
    assert documents and all(d.status == "success" for d in documents)


def _queue(out: Path) -> dict[tuple[str, int, int], list[str]]:
    """``docvlm review OUT --json``: each listed result's reasons, by (sha256, page, result)."""
    done = CliRunner().invoke(app, ["review", str(out), "--json", "--limit", "0"])
    assert done.exit_code == 0, done.output
    return {(i["sha256"], i["page"], i["result"]): i["reasons"] for i in json.loads(done.stdout)}


def _mark_reviewed(out: Path, *documents: Document) -> None:
    """Page 1 of each document marked reviewed, as the viewer's box does."""
    marks = "".join(
        json.dumps({"sha256": d.sha256, "page": 1, "reviewed": True}) + "\n" for d in documents
    )
    (out.parent / "marks.jsonl").write_text(marks)
    done = CliRunner().invoke(app, ["correct", str(out), str(out.parent / "marks.jsonl")])
    assert done.exit_code == 0, done.output


def _records(out: Path) -> list[Document]:
    files = sorted(out.glob("*/document.json"))
    return [Document.model_validate_json(p.read_bytes()) for p in files]


def test_corrected_table_crops_become_examples_finetune_takes(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from docvlm.finetune.tiny import write_trainable_checkpoint

    by_side, _ = pubtabnet_tables(corpus, tmp_path / "in", 3)
    _convert({"table html": by_side}, tmp_path / "in", tmp_path / "out", "table")
    documents = _records(tmp_path / "out")
    store = Output.existing(tmp_path / "out").corrections()
    for number, document in enumerate(documents[:2]):  # the third is left as read
        edit = {"sha256": document.sha256, "page": 1, "result": 0}
        store.apply(Correction(**edit, cell=(1, 0), text=f"fixed {number}"))
    data = tmp_path / "data" / "D.jsonl"
    command = ["data", "corrections", str(tmp_path / "out"), "--task", "table", "--out", str(data)]
    # one cell checked vouches for no other: no example, and the tables stay in the queue
    made = CliRunner().invoke(app, command)
    assert made.exit_code == 1 and not data.exists()
    for document in documents[:2]:
        assert (
            f"left out: {document.source}, page 1, result 0: only some cells were corrected: "
            "correct it whole or mark the page reviewed to train on it"
        ) in " ".join(made.stderr.split())
    queue = _queue(tmp_path / "out")
    partly, unread = (
        ["no_confidence", "partly_corrected"],
        ["no_confidence"],
    )  # scripted: no logprobs
    assert [queue[(d.sha256, 1, 0)] for d in documents] == [partly, partly, unread]
    _mark_reviewed(tmp_path / "out", *documents[:2])
    assert list(_queue(tmp_path / "out")) == [(documents[2].sha256, 1, 0)]
    made = CliRunner().invoke(app, command)
    assert made.exit_code == 0, made.output
    assert "wrote 2 records" in made.stderr
    records = [json.loads(line) for line in data.read_text().splitlines()]
    corrected = {d.sha256: d for d in _records(tmp_path / "out")}
    for record, document in zip(records, documents[:2], strict=True):
        result = corrected[document.sha256].pages[0].results[0]
        assert result.table is not None and result.corrected
        # the image is the crop the model saw: the page padded to a white square
        with Image.open(Path(document.source)) as page:
            seen = crop_square(page.convert("RGB"), result.box).image
        with Image.open(data.parent / record["image"]) as image:
            assert image.size == seen.size
            assert ImageChops.difference(image.convert("RGB"), seen).getbbox() is None
        # the target is the corrected table, with the model's cell boxes as coords
        side = seen.width
        target = parse_table(record["target"], side, side)
        assert target.grid() == result.table.grid()
        assert target.grid()[1][0].startswith("fixed ")
        assert parse_table(result.raw).grid()[1][0] != target.grid()[1][0]
        for got, want in zip(target.cells, result.table.cells, strict=True):
            assert got.box is not None and want.box is not None
            assert abs(got.box.x0 - want.box.x0) <= side / 1024 + 1
            assert abs(got.box.y1 - want.box.y1) <= side / 1024 + 1
    tiny = write_trainable_checkpoint(tmp_path / "tiny")
    trained = CliRunner().invoke(
        app,
        ["finetune", "--task", "table", "--data", str(data), "--out", str(tmp_path / "ft"),
         "--base", str(tiny), "--max-steps", "2", "--lora-rank", "0", "--device", "cpu"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "2 steps on 2 examples" in trained.stderr
    report = json.loads((tmp_path / "ft" / "training.json").read_text())
    assert report["steps"] == 2
    assert (tmp_path / "ft" / "model.safetensors").is_file()


def test_a_corrected_molecule_becomes_its_canonical_smiles(corpus: Path, tmp_path: Path) -> None:
    Chem = pytest.importorskip("rdkit.Chem")
    rows = (corpus / USPTO / "labels.tsv").read_text().splitlines()
    name, molfile, truth, size, _ = next(r for r in rows if r.startswith("US07314939")).split("\t")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / name).write_bytes((corpus / USPTO / name).read_bytes())
    side = str(max(int(v) for v in size.split("x")))
    _convert({"smiles": {side: "c1ccncc1"}}, tmp_path / "in", tmp_path / "out", "molecule")
    (document,) = _records(tmp_path / "out")
    spelled = Chem.MolToSmiles(Chem.MolFromSmiles(truth), canonical=False, doRandom=True)
    Output.existing(tmp_path / "out").corrections().apply(
        Correction(sha256=str(document.sha256), page=1, result=0, value=spelled)
    )
    data = tmp_path / "M.jsonl"
    made = CliRunner().invoke(
        app, ["data", "corrections", str(tmp_path / "out"), "--task", "molecule", "-o", str(data)]
    )
    assert made.exit_code == 0, made.output
    (record,) = [json.loads(line) for line in data.read_text().splitlines()]
    want = Chem.MolToSmiles(Chem.MolFromMolFile(str(corpus / USPTO / molfile)))
    assert record["target"] == want
    assert _queue(tmp_path / "out") == {}  # corrected whole: vouched for, no mark needed
    with (
        Image.open(data.parent / record["image"]) as image,
        Image.open(tmp_path / "in" / name) as page,
    ):
        seen = crop_square(page.convert("RGB"), Box(x0=0, y0=0, x1=page.width, y1=page.height))
        assert ImageChops.difference(image.convert("RGB"), seen.image).getbbox() is None
    empty = CliRunner().invoke(
        app, ["data", "corrections", str(tmp_path / "out"), "--task", "music", "-o", str(data)]
    )
    assert empty.exit_code == 1 and "no corrected music result" in empty.stderr


def test_corrected_text_lines_reach_alto_and_become_examples(corpus: Path, tmp_path: Path) -> None:
    from parsers import box_to_tokens, parse_text
    from tests.formats.schemas import validate

    _, items = pubtabnet_tables(corpus, tmp_path / "in", 1)
    ((name, item),) = items.items()
    with Image.open(tmp_path / "in" / name) as page:
        side = max(page.size)
    cells = [c for c in item["html"]["cells"] if c.get("bbox")][:4]
    raw = "\n".join(
        box_to_tokens(Box(x0=x0, y0=y0, x1=x1, y1=y1), side, side) + "".join(c["tokens"])
        for c in cells
        for x0, y0, x1, y1 in [c["bbox"]]
    )
    raw = raw.replace("<b>", "").replace("</b>", "").replace("<i>", "").replace("</i>", "")
    _convert({"ocr": {str(side): raw}}, tmp_path / "in", tmp_path / "out", "text", "md,alto,page")
    (document,) = _records(tmp_path / "out")
    line = {"sha256": document.sha256, "page": 1, "result": 0, "line": 1, "text": "Hazard rate"}
    (tmp_path / "fix.jsonl").write_text(json.dumps(line) + "\n")
    done = CliRunner().invoke(app, ["correct", str(tmp_path / "out"), str(tmp_path / "fix.jsonl")])
    assert done.exit_code == 0, done.output
    (fixed,) = _records(tmp_path / "out")
    result = fixed.pages[0].results[0]
    assert result.task == "text" and result.corrected and result.raw == raw
    texts = [ln.text for ln in result.lines]
    assert texts[1] == "Hazard rate" and texts[0] == document.pages[0].results[0].lines[0].text
    (folder,) = [p.parent for p in (tmp_path / "out").glob("*/document.json")]
    assert "Hazard rate" in (folder / "document.md").read_text()
    alto = validate((folder / "alto/page-0001.xml").read_text(encoding="utf-8"), "alto-4-4.xsd")
    ns = "{http://www.loc.gov/standards/alto/ns-v4#}"
    lines = [
        " ".join(s.get("CONTENT") for s in tl.iter(f"{ns}String"))
        for tl in alto.iter(f"{ns}TextLine")
    ]
    assert lines == texts
    page = validate(
        (folder / "page/page-0001.xml").read_text(encoding="utf-8"), "pagecontent-2019-07-15.xsd"
    )
    assert "Hazard rate" in [u.text for u in page.iter()]
    data = tmp_path / "T.jsonl"
    command = ["data", "corrections", str(tmp_path / "out"), "--task", "text", "-o", str(data)]
    # one line checked of four: the other three are the model's, so no example yet
    made = CliRunner().invoke(app, command)
    assert made.exit_code == 1 and not data.exists()
    assert (
        f"left out: {document.source}, page 1, result 0: only some lines were corrected: "
        "correct it whole or mark the page reviewed to train on it"
    ) in " ".join(made.stderr.split())
    assert _queue(tmp_path / "out") == {
        (document.sha256, 1, 0): ["no_confidence", "partly_corrected"]
    }
    _mark_reviewed(tmp_path / "out", document)  # a person read the rest: the whole is vouched
    assert _queue(tmp_path / "out") == {}
    made = CliRunner().invoke(app, command)
    assert made.exit_code == 0, made.output
    (record,) = [json.loads(x) for x in data.read_text().splitlines()]
    read = parse_text(record["target"], side, side).lines
    assert [ln.text for ln in read] == texts
    for got, want in zip(read, result.lines, strict=True):
        assert got.box is not None and want.box is not None
        assert abs(got.box.x0 - want.box.x0) <= side / 1024 + 1


def test_a_corrected_score_becomes_its_kern(corpus: Path, tmp_path: Path) -> None:
    music21 = pytest.importorskip("music21")
    image = corpus / "music/images_no_label/smt_grandStaff_official.png"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / image.name).write_bytes(image.read_bytes())
    kern = corpus / "music/kern"
    wrong = (kern / "polish_holland_erste-menuet.krn").read_text(encoding="utf-8")
    right = (kern / "polish_holland_zweite-menuet.krn").read_text(encoding="utf-8")
    with Image.open(image) as page:
        side = str(max(page.size))
    _convert({"kern": {side: wrong}}, tmp_path / "in", tmp_path / "out", "music")
    (document,) = _records(tmp_path / "out")
    edit = Correction(sha256=str(document.sha256), page=1, result=0, value=right)
    Output.existing(tmp_path / "out").corrections().apply(edit)
    (fixed,) = _records(tmp_path / "out")
    score = fixed.pages[0].results[0]
    assert score.task == "music" and score.corrected and score.raw == wrong
    notes = len(
        music21.converter.parse(str(kern / "polish_holland_zweite-menuet.krn")).recurse().notes
    )
    assert score.score is not None and score.score.note_count == notes
    data = tmp_path / "K.jsonl"
    made = CliRunner().invoke(
        app, ["data", "corrections", str(tmp_path / "out"), "--task", "music", "-o", str(data)]
    )
    assert made.exit_code == 0, made.output
    (record,) = [json.loads(x) for x in data.read_text().splitlines()]
    from docvlm.finetune.datasets import kern_target

    assert record["target"] == kern_target(right)


def test_a_page_read_turned_is_left_out_with_its_reason(corpus: Path, tmp_path: Path) -> None:
    """The model read a turned page upright: a crop of the scan at the record's box is not
    what it saw, so no example is written for it, and the reason is given."""
    by_side, _ = pubtabnet_tables(corpus, tmp_path / "in", 2)
    _convert({"table html": by_side}, tmp_path / "in", tmp_path / "out", "table")
    store = Output.existing(tmp_path / "out").corrections()
    documents = _records(tmp_path / "out")
    for document in documents:
        edit = {"sha256": document.sha256, "page": 1, "result": 0}
        store.apply(Correction(**edit, cell=(1, 0), text="fixed"))
    _mark_reviewed(tmp_path / "out", *documents)
    turned = next(iter(sorted((tmp_path / "out").glob("*/document.json"))))
    record = json.loads(turned.read_text(encoding="utf-8"))
    record["pages"][0]["rotation"] = 90  # as a page scanned a quarter turn would be
    turned.write_text(json.dumps(record), encoding="utf-8")
    data = tmp_path / "D.jsonl"
    made = CliRunner().invoke(
        app, ["data", "corrections", str(tmp_path / "out"), "--task", "table", "--out", str(data)]
    )
    assert made.exit_code == 0, made.output
    assert len(data.read_text(encoding="utf-8").splitlines()) == 1
    assert f"left out: {record['source']}, page 1: read turned (rotation 90" in made.stderr
