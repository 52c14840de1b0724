"""Corrections (docs/corrections.md): ``docvlm correct`` applies the good lines of a file
and refuses each bad one with its line number and cause; edits are checked as model output
is (tables parse, SMILES pass RDKit); two saves of one page merge or conflict; JSON Lines
and Parquet destinations give corrected records when compacted or exported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from answered_convert import (
    answering_client,
    convert,
    pubtabnet_tables,
    refusals,
    tables_converted,
)
from typer.testing import CliRunner, Result

from docvlm import Document
from docvlm.archive.corrections import corrected_documents
from docvlm.archive.edits import Correction, CorrectionError, VersionConflict
from docvlm.archive.output import Output, open_sink
from docvlm.cli import app
from parsers import parse_table

USPTO = "molecules/images_with_mol/uspto"


def _documents(out: Path) -> dict[str, Document]:
    found = [Document.model_validate_json(p.read_bytes()) for p in out.glob("*/document.json")]
    return {Path(d.source).name: d for d in found}


def test_correct_applies_the_good_lines_and_refuses_each_bad_one(
    corpus: Path, tmp_path: Path
) -> None:
    by_side, _ = pubtabnet_tables(corpus, tmp_path / "in", 2)
    ran = convert([str(tmp_path / "in"), "--task", "table", "--out", f"{tmp_path}/out/"],
                  {"table html": by_side}, tmp_path)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    first, second = sorted(_documents(tmp_path / "out").values(), key=lambda d: d.source)
    h1, h2 = first.sha256, second.sha256
    lines = [
        {"sha256": h1, "page": 1, "result": 0, "cell": [1, 1], "text": "0.717"},  # good
        {"sha256": h1, "page": 1, "result": 0, "cell": [1, 99], "text": "x"},
        {"sha256": h1, "page": 1, "result": 0, "cell": [2, 0], "text": "a</td><td>b"},
        "not json {",
        {"sha256": h1, "page": 1, "result": 0, "line": 0, "text": "a line"},
        {"sha256": "0" * 64, "page": 1, "result": 0, "cell": [0, 0], "text": "x"},
        {"sha256": h2, "page": 1, "result": 0, "value": "no table in this text"},
        {"sha256": h2, "page": 1, "result": 0, "cell": [0, 0]},
        {"sha256": h2, "page": 1, "reviewed": True},  # good
        {"sha256": h2, "page": 7, "result": 0, "cell": [0, 0], "text": "x"},
    ]
    file = tmp_path / "fix.jsonl"
    file.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    result = CliRunner().invoke(app, ["correct", f"{tmp_path}/out/", str(file)])
    assert result.exit_code == 1
    causes = refusals(result.stderr)
    assert sorted(causes) == [2, 3, 4, 5, 6, 7, 8, 10]
    assert "no cell 99 in row 1" in causes[2]
    assert "changes the table's grid" in causes[3]
    assert "not JSON" in causes[4]
    assert "not text: a line needs a text result" in causes[5]
    assert "no record of a source with sha256 000" in causes[6]
    assert "does not parse as table" in causes[7]
    assert "needs text" in causes[8]
    assert "page 7: no such page" in causes[10]
    assert "applied 2 correction(s), refused 8" in result.stderr
    fixed = _documents(tmp_path / "out")
    table = fixed[Path(first.source).name].pages[0].results[0]
    assert table.corrected and table.table is not None and table.table.grid()[1][1] == "0.717"
    assert table.raw == first.pages[0].results[0].raw  # the model's output is kept
    untouched = fixed[Path(second.source).name]
    assert untouched == second  # a review mark and refused edits change no record
    assert Output.existing(tmp_path / "out").corrections().reviewed(str(h2), 1)
    assert Output.existing(tmp_path / "out").corrections().version(str(h2), 1) == 1


def test_a_smiles_correction_must_pass_rdkit(corpus: Path, tmp_path: Path) -> None:
    Chem = pytest.importorskip("rdkit.Chem")
    rows = (corpus / USPTO / "labels.tsv").read_text().splitlines()
    name, _, truth, size, _ = next(r for r in rows if r.startswith("US07314778")).split("\t")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / name).write_bytes((corpus / USPTO / name).read_bytes())
    wrong = "Oc1ccc(Cc2ccccc2)cc1"  # the model missed one hydroxy group
    side = str(max(int(v) for v in size.split("x")))
    ran = convert([str(tmp_path / "in"), "--task", "molecule", "--out", f"{tmp_path}/out/"],
                  {"smiles": {side: wrong}}, tmp_path)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    (document,) = _documents(tmp_path / "out").values()
    store = Output.existing(tmp_path / "out").corrections()
    edit = {"sha256": document.sha256, "page": 1, "result": 0}
    invalid = (corpus / "molecules/smiles/openbabel_invalid-smiles.txt").read_text().split()[0]
    with pytest.raises(CorrectionError, match="does not parse as molecule"):
        store.apply(Correction(**edit, value=invalid))
    entry = store.apply(Correction(**edit, value=truth), by="chemist")
    assert (entry.before, entry.after, entry.by, entry.version) == (wrong, truth, "chemist", 1)
    (fixed,) = _documents(tmp_path / "out").values()
    molecule = fixed.pages[0].results[0]
    assert molecule.task == "molecule" and molecule.molecule is not None
    assert molecule.corrected and molecule.raw == wrong
    want = Chem.MolToInchi(Chem.MolFromMolFile(str(corpus / USPTO / name.replace(".TIF", ".MOL"))))
    assert Chem.MolToInchi(Chem.MolFromSmiles(molecule.molecule.smiles)) == want
    (sdf,) = (tmp_path / "out").glob("*/molecule-*.sdf")
    assert Chem.MolToInchi(next(Chem.SDMolSupplier(str(sdf)))) == want


def test_two_saves_of_one_page_merge_or_the_second_is_refused(corpus: Path, tmp_path: Path) -> None:
    (document, _) = sorted(tables_converted(corpus, tmp_path, "out/"), key=lambda d: d.source)
    edit = {"sha256": document.sha256, "page": 1, "result": 0, "version": 0}
    output = Output.existing(tmp_path / "out")
    ann, bob = output.corrections(), output.corrections()  # two people
    ann.apply(Correction(**edit, cell=(1, 0), text="by Ann"), by="ann")
    bob.apply(Correction(**edit, cell=(2, 0), text="by Bob"), by="bob")  # elsewhere: merged
    with pytest.raises(VersionConflict, match="cell 1,0 was corrected by ann") as refused:
        bob.apply(Correction(**edit, cell=(1, 0), text="Bob again"), by="bob")
    assert refused.value.current == 2
    whole = Correction(**edit, value="<tr><td>a whole new table</td></tr>")
    with pytest.raises(VersionConflict, match="changed since version 0"):
        ann.apply(whole)  # made before the cells changed: it would overwrite them
    with pytest.raises(VersionConflict, match="no version 9"):
        ann.apply(Correction(**{**edit, "version": 9}, cell=(1, 0), text="x"))
    (current,) = [d for d in _documents(tmp_path / "out").values() if d.source == document.source]
    grid = current.pages[0].results[0].table.grid()  # type: ignore[union-attr]
    assert (grid[1][0], grid[2][0]) == ("by Ann", "by Bob")
    made = {**edit, "version": 2}  # against the version now: accepted
    bob.apply(Correction(**made, cell=(1, 0), text="Bob again"), by="bob")
    log = [
        json.loads(line)
        for line in Output.parse(tmp_path / "out").corrections_file.read_text().splitlines()
    ]
    assert [(e["by"], e["after"], e["version"]) for e in log] == [
        ("ann", "by Ann", 1),
        ("bob", "by Bob", 2),
        ("bob", "Bob again", 3),
    ]


def test_jsonl_gets_the_corrections_when_compacted_or_exported(
    corpus: Path, tmp_path: Path
) -> None:
    documents = sorted(tables_converted(corpus, tmp_path, "out.jsonl"), key=lambda d: d.source)
    out = tmp_path / "out.jsonl"
    line = {"sha256": documents[0].sha256, "page": 1, "result": 0, "cell": [1, 1]}
    (tmp_path / "fix.jsonl").write_text(json.dumps({**line, "text": "0.999"}) + "\n")
    result = CliRunner().invoke(app, ["correct", str(out), str(tmp_path / "fix.jsonl")])
    assert result.exit_code == 0, result.output
    assert Output.parse(out).corrections_file == tmp_path / "out.jsonl.corrections.jsonl"
    stored = [Document.model_validate_json(x) for x in out.read_text().splitlines()]
    assert stored == documents  # the file itself waits for its compaction

    def cell(document: Document) -> str:
        return document.pages[0].results[0].table.grid()[1][1]  # type: ignore[union-attr]

    read_back = sorted(corrected_documents(Output.existing(out)), key=lambda d: d.source)
    assert cell(read_back[0]) == "0.999"
    assert read_back[1] == documents[1]
    exported = CliRunner().invoke(app, ["export", str(out), str(tmp_path / "copy.jsonl")])
    assert exported.exit_code == 0, exported.output
    copy = [
        Document.model_validate_json(x)
        for x in (tmp_path / "copy.jsonl").read_text().split("\n")
        if x
    ]
    assert sorted(copy, key=lambda d: d.source) == read_back
    with open_sink(out, cursor=str(out.stat().st_size)) as sink:
        sink.compact()
    compacted = sorted(
        (Document.model_validate_json(x) for x in out.read_text().splitlines()),
        key=lambda d: d.source,
    )
    assert compacted == read_back
    assert compacted[0].pages[0].results[0].corrected
    assert parse_table(compacted[0].pages[0].results[0].raw).grid()[1][1] != "0.999"


def test_parquet_records_read_back_and_exported_corrected(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    documents = sorted(tables_converted(corpus, tmp_path, "out.parquet"), key=lambda d: d.source)
    out = tmp_path / "out.parquet"
    edit = {"sha256": documents[1].sha256, "page": 1, "result": 0}
    Output.existing(out).corrections().apply(Correction(**edit, cell=(0, 0), text="Corrected head"))
    exported = CliRunner().invoke(
        app, ["export", str(out), f"{tmp_path}/folder/", "--formats", "alto"]
    )
    assert exported.exit_code == 0, exported.output
    written = {d.source: d for d in _documents(tmp_path / "folder").values()}
    table = written[documents[1].source].pages[0].results[0]
    assert table.corrected and table.table.grid()[0][0] == "Corrected head"  # type: ignore[union-attr]
    assert table.raw == documents[1].pages[0].results[0].raw
    assert written[documents[0].source].pages == documents[0].pages


_SAVER = """
import sys
from docvlm.archive.edits import Correction
from docvlm.archive.output import Output
out, sha, row, who = sys.argv[1:]
store = Output.existing(out).corrections()
for col in range(4):
    edit = Correction(sha256=sha, page=1, result=0, version=0, cell=(int(row), col),
                      text=f"{who} {col}")
    store.apply(edit, by=who)
"""


def test_two_processes_saving_one_page_at_once_lose_nothing(corpus: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (document, _) = sorted(tables_converted(corpus, tmp_path, "out/"), key=lambda d: d.source)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    savers = [
        subprocess.Popen(
            [sys.executable, "-c", _SAVER, f"{tmp_path}/out/", str(document.sha256), row, who],
            env=env,
        )
        for row, who in (("1", "ann"), ("2", "bob"))
    ]
    assert [saver.wait(timeout=120) for saver in savers] == [0, 0]
    log = [
        json.loads(line)
        for line in Output.parse(tmp_path / "out").corrections_file.read_text().splitlines()
    ]
    assert sorted(e["version"] for e in log) == list(range(1, 9))  # each save its version
    (current,) = [d for d in _documents(tmp_path / "out").values() if d.source == document.source]
    grid = current.pages[0].results[0].table.grid()  # type: ignore[union-attr]
    assert grid[1][:4] == [f"ann {c}" for c in range(4)]
    assert grid[2][:4] == [f"bob {c}" for c in range(4)]


def test_correct_refuses_while_a_run_writes_the_output(corpus: Path, tmp_path: Path) -> None:

    (document, _) = sorted(tables_converted(corpus, tmp_path, "out/"), key=lambda d: d.source)
    line = {"sha256": document.sha256, "page": 1, "result": 0, "cell": [1, 0], "text": "x"}
    (tmp_path / "fix.jsonl").write_text(json.dumps(line) + "\n")
    with Output.parse(f"{tmp_path}/out/").lock():  # a conversion is writing here
        busy = CliRunner().invoke(app, ["correct", f"{tmp_path}/out/", str(tmp_path / "fix.jsonl")])
    assert busy.exit_code == 4 and "another run is writing here" in busy.stderr
    assert not Output.parse(tmp_path / "out").corrections_file.exists()
    done = CliRunner().invoke(app, ["correct", f"{tmp_path}/out/", str(tmp_path / "fix.jsonl")])
    assert done.exit_code == 0, done.output


def test_a_correction_a_new_reading_has_no_place_for_is_kept_in_the_log_and_said(
    corpus: Path, tmp_path: Path
) -> None:
    by_side, _ = pubtabnet_tables(corpus, tmp_path / "in", 1)
    client = answering_client({"table html": by_side})
    (document,) = client.convert_many([tmp_path / "in"], tasks=["table"], out=f"{tmp_path}/out/")
    rows = parse_table(document.pages[0].results[0].raw).shape[0]
    edit = {"sha256": document.sha256, "page": 1, "result": 0}
    Output.existing(tmp_path / "out").corrections().apply(
        Correction(**edit, cell=(rows - 1, 0), text="last row")
    )
    ((side, raw),) = by_side.items()
    cut = raw[: raw.rfind("<tr>")] + "</tbody>"  # the new reading misses the last row
    again = answering_client({"table html": {side: cut}})
    list(again.convert_many([tmp_path / "in"], tasks=["table"], out=f"{tmp_path}/out/", redo=True))
    (stored,) = _documents(tmp_path / "out").values()
    page = stored.pages[0]
    assert page.results[0].raw == cut and not page.results[0].corrected
    (warning,) = page.warnings
    assert (
        warning.startswith("correction not applied:") and f"no cell 0 in row {rows - 1}" in warning
    )
    log = Output.parse(tmp_path / "out").corrections_file
    assert len(log.read_text().splitlines()) == 1  # still in the log


def test_a_table_joined_across_pages_is_corrected_when_a_part_is(
    corpus: Path, tmp_path: Path
) -> None:
    from docvlm.reading.stitch import join_tables

    first, second = (d.pages[0].results[0] for d in tables_converted(corpus, tmp_path, "out/"))
    assert first.task == "table" and second.task == "table"
    fixed = second.model_copy(update={"corrected": True})
    assert join_tables(first, fixed).corrected and join_tables(fixed, first).corrected
    assert not join_tables(first, second).corrected


def test_export_never_writes_over_its_output_a_conversion_or_a_running_run(
    corpus: Path, tmp_path: Path
) -> None:
    tables_converted(corpus, tmp_path, "out.jsonl")
    out = tmp_path / "out.jsonl"
    before = out.read_bytes()

    def export(source: Path | str, target: Path | str) -> Result:
        return CliRunner().invoke(app, ["export", str(source), str(target)])

    itself = export(out, out)  # read lazily, it was emptied before a record was read
    assert itself.exit_code == 2 and "that is the output itself" in itself.stderr
    tables_converted(corpus, tmp_path / "other", "conv.jsonl")
    converted = tmp_path / "other" / "conv.jsonl"
    kept = converted.read_bytes()
    onto = export(out, converted)  # its manifest would skip records the file no longer holds
    assert onto.exit_code == 2 and "a conversion's destination" in onto.stderr
    assert converted.read_bytes() == kept
    with Output.parse(out).lock():  # a conversion is writing the output: not read half-done
        busy = export(out, tmp_path / "copy.jsonl")
    assert busy.exit_code == 4 and "another run is writing here" in busy.stderr
    with Output.parse(tmp_path / "copy.jsonl").lock():  # nor written under another run
        taken = export(out, tmp_path / "copy.jsonl")
    assert taken.exit_code == 4 and not (tmp_path / "copy.jsonl").exists()
    assert out.read_bytes() == before
    assert export(out, tmp_path / "copy.jsonl").exit_code == 0
