from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from docvlm import json_schema
from docvlm.archive.output import open_sink
from docvlm.archive.parquet import (
    COLUMNS,
    ParquetFileSink,
    ParquetPartsSink,
    arrow_schema,
    row_json_schema,
)
from docvlm.archive.records import build_document
from docvlm.archive.sinks import FolderSink, JsonlSink
from docvlm.document import Document
from docvlm.results import MoleculeResult, MusicResult, Page, TableResult, TextResult
from parsers import Box

FRAME = Box(x0=0, y0=0, x1=448, y1=448)
TABLE = "<table><tr><th>dose</th><th>n</th></tr><tr><td>5 mg</td><td>12</td></tr></table>"


def _provenance(name: str, page: int) -> dict[str, object]:
    return {"source": name, "page": page, "box": FRAME, "checkpoint": "c", "prompt": "p"}


def _document(name: str, pages: int = 2) -> Document:
    done = [
        Page(
            number=n,
            width=448,
            height=448,
            status="ok",
            results=(
                TextResult.from_output(
                    "hello <loc0000><loc0000><loc0100><loc0500>", FRAME, **_provenance(name, n)
                ),
                TableResult.from_output(TABLE, FRAME, **_provenance(name, n)),
            ),
        )
        for n in range(1, pages + 1)
    ]
    done.append(Page(number=pages + 1, status="error", error="cannot render the page"))
    return build_document(name, done, sha256="ab" * 32)


def test_destination_picks_the_sink(tmp_path: Path) -> None:
    kinds = {
        "a.jsonl": JsonlSink,
        "out/": FolderSink,
        "a.parquet": ParquetFileSink,
        "parts.parquet/": ParquetPartsSink,
    }
    for destination, kind in kinds.items():
        with open_sink(f"{tmp_path}/{destination}") as sink:
            assert type(sink) is kind
    with pytest.raises(ValueError, match=r"\.txt"):
        open_sink(tmp_path / "a.txt")


def test_jsonl_trims_what_was_written_after_the_last_commit(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(path)
    sink.write(_document("a.pdf"))
    cursor = sink.commit()
    sink.write(_document("b.pdf"))  # written, never committed: a crash here
    sink._file.write(b'{"half a li')
    sink._file.close()
    with JsonlSink(path, cursor) as resumed:
        resumed.write(_document("c.pdf"))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["source"] for r in records] == ["a.pdf", "c.pdf"]
    for record in records:
        jsonschema.validate(record, json_schema("document"))
        assert record["schema_version"] == 1 and record["sha256"] == "ab" * 32
        assert Document.model_validate(record).status == "partial"


def test_parquet_file_reads_back_under_the_documented_schema(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "out.parquet"
    with open_sink(path) as sink:
        sink.write(_document("a.pdf"))
        sink.commit()
        sink.write(build_document("broken.pdf", [], error="not a PDF"))
    table = pq.read_table(path)
    assert table.schema.equals(arrow_schema(), check_metadata=False)
    assert table.schema.names == list(COLUMNS)
    frame = pandas.read_parquet(path)
    # 2 pages x 2 results, 1 failed page, 1 unreadable document
    assert len(frame) == 6
    assert list(frame["status"]) == ["ok", "ok", "ok", "ok", "error", "failure"]
    table_rows = frame[frame["task"] == "table"]
    restored = TableResult.model_validate_json(table_rows["result_json"].iloc[0])
    assert restored.table is not None and restored.table.grid() == [["dose", "n"], ["5 mg", "12"]]
    assert table_rows["text"].iloc[0] == restored.table.to_markdown()
    assert frame["page_id"].iloc[0].endswith(":1") and frame["page"].isna().iloc[-1]
    for row in table.to_pylist():
        jsonschema.validate(row, row_json_schema())


def test_parquet_resume_neither_loses_nor_doubles_parts(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "out.parquet"
    sink = open_sink(path)
    sink.write(_document("a.pdf", 1))
    cursor = sink.commit()
    sink.write(_document("lost.pdf", 1))
    sink.commit()  # a part the manifest never heard of: dropped on resume
    resumed = open_sink(path, cursor=cursor)
    resumed.write(_document("b.pdf", 1))
    resumed.close()
    sources = pq.read_table(path).column("source").to_pylist()
    assert sorted(set(sources)) == ["a.pdf", "b.pdf"]
    # a rerun after the join adds to the file without repeating what it holds
    again = open_sink(path, cursor=str(resumed._parts.parts))  # type: ignore[attr-defined]
    again.write(_document("c.pdf", 1))
    again.close()
    sources = pq.read_table(path).column("source").to_pylist()
    assert [sources.count(s) for s in ("a.pdf", "b.pdf", "c.pdf")] == [3, 3, 3]


def test_parquet_parts_folder_reads_as_one_dataset(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    folder = tmp_path / "parts.parquet"
    with open_sink(f"{folder}/") as sink:
        sink.write(_document("a.pdf", 1))
        sink.commit()
        sink.write(_document("b.pdf", 1))
    (folder / "_manifest.sqlite").write_bytes(b"not parquet")  # ignored by readers
    frame = pandas.read_parquet(folder)
    assert sorted(set(frame["source"])) == ["a.pdf", "b.pdf"]
    assert len(list(folder.glob("part-*.parquet"))) == 2


def test_output_folder_writes_files_the_fields_tools_read(tmp_path: Path, corpus: Path) -> None:
    chem = pytest.importorskip("rdkit.Chem")
    music21 = pytest.importorskip("music21")
    kern = (corpus / "music/kern/polish_holland_erste-menuet.krn").read_text()
    molecule = MoleculeResult.from_output("CC(=O)Oc1ccccc1C(=O)O", FRAME, **_provenance("m", 1))
    score = MusicResult.from_output(kern, FRAME, **_provenance("m", 1))
    table = TableResult.from_output(TABLE, FRAME, **_provenance("m", 1))
    page = Page(number=1, status="ok", results=(table, molecule, score))
    document = build_document("dir/m.pdf", [page], sha256="cd" * 32)
    with open_sink(f"{tmp_path}/out/") as sink:
        sink.write(document)
    (folder,) = (tmp_path / "out").iterdir()
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "document.json",
        "document.md",
        "molecule-p1-2.sdf",
        "music-p1-3.musicxml",
        "table-p1-1.csv",
        "table-p1-1.html",
    ]
    assert Document.model_validate_json((folder / "document.json").read_text()) == document
    (read_back,) = list(chem.SDMolSupplier(str(folder / "molecule-p1-2.sdf")))
    assert chem.MolToSmiles(read_back) == chem.MolToSmiles(
        chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O")
    )
    parsed = music21.converter.parse(str(folder / "music-p1-3.musicxml"))
    assert score.score is not None
    assert len(parsed.flatten().notes) == len(score.score.to_music21().flatten().notes) > 0
    assert (folder / "table-p1-1.csv").read_text() == "dose,n\n5 mg,12\n"
    assert "| dose | n |" in (folder / "document.md").read_text()


def test_a_join_cut_by_a_crash_is_not_joined_twice(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "out.parquet"
    sink = open_sink(path)
    sink.write(_document("a.pdf", 1))
    cursor = sink.commit()
    parts = path.with_name("out.parquet.parts")
    shutil.copytree(parts, tmp_path / "saved")
    sink.close()  # joined; the parts are deleted after the file is in place
    shutil.copytree(tmp_path / "saved", parts)  # as if the crash came before that delete
    resumed = open_sink(path, cursor=cursor)
    resumed.write(_document("b.pdf", 1))
    resumed.close()
    sources = pq.read_table(path).column("source").to_pylist()
    assert [sources.count(s) for s in ("a.pdf", "b.pdf")] == [3, 3]


def test_parquet_has_a_typed_column_for_every_fact_of_the_json_record(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    pq = pytest.importorskip("pyarrow.parquet")
    warned = _document("a.pdf")
    pages = list(warned.pages)
    pages[0] = pages[0].model_copy(
        update={"dpi": 66.0, "warnings": ("rendered at 66 dpi instead of 150",)}
    )
    document = warned.model_copy(update={"pages": tuple(pages)})
    path = tmp_path / "out.parquet"
    with open_sink(path) as sink:
        sink.write(document)
        sink.write(build_document("broken.pdf", [], error="not a PDF"))
    table = pq.read_table(path)
    for name in ("schema_version", "document_id", "source", "document_status", "status"):
        assert not table.schema.field(name).nullable
    frame = pandas.read_parquet(path)
    for name in ("page", "page_width", "page_height", "result_index"):
        assert str(frame[name].dtype) == "Int64", name  # not float64 with NaN
    assert frame["page"].isna().iloc[-1] and frame["page"].iloc[0] == 1
    record = json.loads(document.model_dump_json())
    rows = [r for r in table.to_pylist() if r["source"] == "a.pdf"]
    for row in rows:
        page = next(p for p in record["pages"] if p["number"] == row["page"])
        assert row["page_warnings"] == page["warnings"] and row["page_dpi"] == page["dpi"]
        assert (row["page_width"], row["page_height"]) == (page["width"], page["height"])
        assert (row["page_status"], row["page_error"]) == (page["status"], page["error"])
        if row["result_index"] is not None:
            result = page["results"][row["result_index"]]
            assert json.loads(row["result_json"]) == result
            for key in ("task", "status", "error", "confidence", "stop", "checkpoint"):
                assert row[key] == result[key], key
            assert (row["prompt"], row["raw"]) == (result["prompt"], result["raw"])
            assert row["box_x0"] == result["box"]["x0"] and row["box_y1"] == result["box"]["y1"]
    assert rows[0]["page_warnings"] == ["rendered at 66 dpi instead of 150"]
