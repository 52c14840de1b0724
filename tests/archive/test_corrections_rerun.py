"""A rerun, ``--retry-failed`` or ``--redo`` never overwrites a correction without saying
so, in an output folder, a JSONL file, a Parquet file and a folder of Parquet parts
(docs/corrections.md, "What a rerun does to corrections"): real runs of the tiny model
through ``docvlm convert``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from answered_convert import pubtabnet_tables
from PIL import Image
from PIL.TiffImagePlugin import TiffImageFile
from typer.testing import CliRunner, Result

from docvlm import Document, DocVLM
from docvlm.archive.corrections import corrected_documents
from docvlm.archive.edits import Correction
from docvlm.archive.output import Output
from docvlm.cli import app
from docvlm.results import TableResult, TextResult
from docvlm.testing import ScriptedEngine
from parsers import parse_table

runner = CliRunner()
ANN, BOB = "Fixed by Ann", "Fixed by Bob"


@pytest.fixture(scope="module")
def scans(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real text page, and a two-page TIFF of it whose second frame is damaged: the
    document is partial (page 2 cannot be decoded), so ``--retry-failed`` reads it again."""
    folder = tmp_path_factory.mktemp("scans")
    scan = Image.open(corpus / "pdfs/good_scans/ocrmypdf_linn.png").convert("L")
    scan = scan.resize((scan.width // 4, scan.height // 4), Image.Resampling.BOX)
    scan.save(folder / "page.png")
    torn = folder / "torn.tif"
    scan.save(torn, save_all=True, append_images=[scan.rotate(180)], compression="tiff_deflate")
    with Image.open(torn) as tiff:
        assert isinstance(tiff, TiffImageFile)
        tiff.seek(1)
        start, length = tiff.tag_v2[273][0], tiff.tag_v2[279][0]  # the frame's strip
    data = bytearray(torn.read_bytes())
    data[start + 10 : start + length - 10] = b"\x55" * (length - 20)
    torn.write_bytes(bytes(data))
    return folder


def _convert(scans: Path, out: str, checkpoint: Path, *options: str) -> Result:
    args = ["convert", str(scans), "-t", "text", "-c", str(checkpoint), "--device", "cpu"]
    budget = [] if "--max-new-tokens" in options else ["--max-new-tokens", "8"]
    return runner.invoke(app, [*args, *budget, "--out", out, "--log-format", "json", *options])


def _text(document: Document, line: int) -> str:
    result = document.pages[0].results[0]
    assert isinstance(result, TextResult)
    return result.lines[line].text


def _by_name(documents: object) -> dict[str, Document]:
    return {Path(d.source).name: d for d in documents}  # type: ignore[attr-defined]


def _held(out: Path) -> list[Document]:
    """Every record the destination itself holds (all lines of a JSONL file)."""
    return list(Output.existing(out).records())


@pytest.mark.parametrize("kind", ["out/", "out.jsonl", "out.parquet", "parts.parquet/"])
def test_reruns_keep_corrections_or_say_so(
    kind: str, scans: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    parquet = ".parquet" in kind
    if parquet:
        pytest.importorskip("pyarrow")
    dest = f"{tmp_path}/{kind}"
    out = Path(dest)
    first = _convert(scans, dest, tiny_checkpoint)
    assert first.exit_code == 1, first.output  # torn.tif is partial
    stored = _by_name(_held(out))
    page, torn = stored["page.png"], stored["torn.tif"]
    assert torn.status == "partial" and [p.status for p in torn.pages] == ["ok", "error"]
    last = len(page.pages[0].results[0].lines) - 1  # type: ignore[union-attr]
    assert last >= 1
    fixes = [
        {"sha256": page.sha256, "page": 1, "result": 0, "line": last, "text": ANN},
        {"sha256": torn.sha256, "page": 1, "result": 0, "line": 0, "text": BOB},
    ]
    (tmp_path / "fix.jsonl").write_text("".join(json.dumps(x) + "\n" for x in fixes))
    corrected = runner.invoke(app, ["correct", dest, str(tmp_path / "fix.jsonl")])
    assert corrected.exit_code == 0, corrected.output

    def corrected_everywhere(records: list[Document]) -> bool:
        """Every record holds its correction, the model's output kept."""
        by_name = [(Path(d.source).name, d) for d in records]
        assert by_name and {name for name, _ in by_name} <= {"page.png", "torn.tif"}
        return all(
            _text(d, last if name == "page.png" else 0) == (ANN if name == "page.png" else BOB)
            and d.pages[0].results[0].corrected
            and d.pages[0].results[0].raw == stored[name].pages[0].results[0].raw
            for name, d in by_name
        )

    def exported() -> list[Document]:
        copy = tmp_path / "export.jsonl"
        copy.unlink(missing_ok=True)
        done = runner.invoke(app, ["export", dest, str(copy)])
        assert done.exit_code == 0, done.output
        return _held(copy)

    folder = kind == "out/"
    assert corrected_everywhere(_held(out)) == folder  # a file waits for compaction/export
    assert corrected_everywhere(exported())

    plain = _convert(scans, dest, tiny_checkpoint)  # skips both
    assert plain.exit_code == 1, plain.output
    assert '"files_skipped": 2' in plain.stderr
    assert corrected_everywhere(_held(out)) == folder
    assert corrected_everywhere(exported())

    retried = _convert(scans, dest, tiny_checkpoint, "--retry-failed")
    assert retried.exit_code == 1, retried.output  # page 2 of torn.tif fails again
    assert '"pages_reused": 1' in retried.stderr  # its page 1 (corrected) from the manifest
    held = _held(out)
    if parquet:  # the retried record is written corrected; the others: export
        assert corrected_everywhere([d for d in held if d.source.endswith("torn.tif")])
    else:  # a folder at once; a JSONL file compacted (the retry replaced a record)
        assert corrected_everywhere(held) and len(held) == 2
    assert corrected_everywhere(exported()) and len(exported()) == 2

    redone = _convert(scans, dest, tiny_checkpoint, "--redo")  # the same model: same reading
    assert redone.exit_code == 1, redone.output
    assert corrected_everywhere(_held(out)) and len(_held(out)) == 2
    assert "correction not applied" not in redone.stderr
    assert len(Output.existing(out).corrections_file.read_text().splitlines()) == 2
    if folder:  # every file of the folder holds it, not only document.json
        (markdown,) = out.glob("page.png-*/document.md")
        assert ANN in markdown.read_text(encoding="utf-8")
    if parquet:  # a row: the model's output in raw, the corrected text in text
        import pyarrow.parquet as pq

        rows = pq.read_table(out, columns=["source", "page", "raw", "text"]).to_pylist()
        (row,) = [r for r in rows if r["source"].endswith("page.png")]
        assert ANN in row["text"] and ANN not in row["raw"]
        assert row["raw"] == stored["page.png"].pages[0].results[0].raw

    # a new reading with fewer lines has no place for Ann's line: said, and kept in the log
    rich = ["--log-format", "rich"] if folder else []  # people get a line, collectors JSON
    shorter = _convert(scans, dest, tiny_checkpoint, "--redo", "--max-new-tokens", "1", *rich)
    assert shorter.exit_code == 1, shorter.output
    now = _by_name(_held(out))["page.png"]
    assert len(now.pages[0].results[0].lines) <= last  # type: ignore[union-attr]
    (warning,) = [w for w in now.pages[0].warnings if w.startswith("correction not applied: ")]
    assert f"{now.source}, page 1, result 0 line {last}: no line {last}" in warning
    said = [x for x in shorter.stderr.splitlines() if "correction not applied" in x]
    if folder:
        assert f"warning: {warning} (kept in the log)" in [" ".join(x.split()) for x in said]
    else:
        events = [json.loads(x) for x in said if json.loads(x)["source"] == now.source]
        assert [(e["event"], e["page"], e["warning"]) for e in events] == [
            ("correction_not_applied", 1, warning)
        ]
    assert len(Output.existing(out).corrections_file.read_text().splitlines()) == 2
    again = _convert(scans, dest, tiny_checkpoint, "--redo")  # the old reading: back in place
    assert again.exit_code == 1, again.output
    assert corrected_everywhere(_held(out))
    assert corrected_everywhere(list(corrected_documents(Output.existing(out))))


def test_convert_many_yields_the_records_as_written_corrected(corpus: Path, tmp_path: Path) -> None:
    by_side, _ = pubtabnet_tables(corpus, tmp_path / "in", 1)

    def client() -> DocVLM:
        return DocVLM(
            checkpoint="scripted",
            engine_factory=lambda c, s: ScriptedEngine(
                lambda r: by_side.get(str(r.image.width), ""), resolution=896
            ),
        )

    out = f"{tmp_path}/out/"
    (first,) = client().convert_many([tmp_path / "in"], tasks=["table"], out=out)
    edit = Correction(sha256=first.sha256, page=1, result=0, cell=(1, 0), text="0.717")
    Output.existing(out).corrections().apply(edit)
    (again,) = client().convert_many([tmp_path / "in"], tasks=["table"], out=out, redo=True)
    (stored,) = Output.existing(Path(out)).records()
    assert again == stored  # what Python is given is the record, with its correction
    table = again.pages[0].results[0]
    assert isinstance(table, TableResult) and table.table is not None and table.corrected
    assert table.table.grid()[1][0] == "0.717" and table.raw == first.pages[0].results[0].raw
    assert parse_table(table.raw).grid()[1][0] != "0.717"


@pytest.mark.parametrize("kind", ["out/", "out.jsonl"])
def test_a_file_whose_bytes_changed_is_said_to_lose_its_corrections(
    kind: str, scans: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "page.png").write_bytes((scans / "page.png").read_bytes())
    dest = f"{tmp_path}/{kind}"
    assert _convert(folder, dest, tiny_checkpoint).exit_code == 0
    (before,) = _held(Path(dest))
    fix = {"sha256": before.sha256, "page": 1, "result": 0, "line": 0, "text": ANN}
    (tmp_path / "fix.jsonl").write_text(json.dumps(fix) + "\n")
    assert runner.invoke(app, ["correct", dest, str(tmp_path / "fix.jsonl")]).exit_code == 0
    with Image.open(folder / "page.png") as image:  # the scan is replaced by a new one
        image.rotate(180).save(folder / "page.png")
    rerun = _convert(folder, dest, tiny_checkpoint)  # reads the new bytes, replaces the record
    assert rerun.exit_code == 0, rerun.output
    (after,) = list(corrected_documents(Output.existing(Path(dest))))
    assert after.sha256 != before.sha256 and not after.pages[0].results[0].corrected
    (warning,) = [w for w in after.pages[0].warnings if w.startswith("correction not applied")]
    assert f"{after.source}, page 1, result 0 line 0: made on other bytes of this file" in warning
    (event,) = [json.loads(x) for x in rerun.stderr.splitlines() if "correction_not_applied" in x]
    assert (event["source"], event["page"], event["warning"]) == (after.source, 1, warning)
    assert (
        len(Output.existing(Path(dest)).corrections_file.read_text().splitlines()) == 1
    )  # still in the log
