"""Records of one source written more than once: the Ray runner's parts (named by a
digest, so not in write order by name) and a JSON Lines file a run left uncompacted. Each
reader (``Output.stored``, ``Parts.written``, ``docvlm correct``, ``export``, ``review``)
takes the last record written. And the two runners keep out of each other's folders."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docvlm import DocVLM, Settings
from docvlm.archive.output import Output
from docvlm.cli import app
from docvlm.distributed.store import Parts
from docvlm.document import Document
from docvlm.errors import ExitCode, SettingsError
from docvlm.testing import ScriptedEngine

pytest.importorskip("pyarrow")  # Parts writes with it

#: one source read three times, its bytes changed between runs
READINGS = [("1" * 64, "first reading"), ("2" * 64, "second reading"), ("3" * 64, "third one")]
#: as recorded: a part's name is a digest of source and hash, and for this source the
#: three parts' names sort in the reverse of the order they are written
SOURCE = "scans/scan.pdf"


def _read(pdf: Path, text: str, sha256: str) -> Document:
    engine = ScriptedEngine(lambda request: text)
    with DocVLM(Settings(dpi=36), engine_factory=lambda c, s: engine, checkpoint="s") as client:
        document = client.convert(pdf, tasks=["text"])
    assert document.pages[0].results[0].raw == text  # the engine's answer, recorded
    return document.model_copy(update={"source": SOURCE, "sha256": sha256})


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _fixes(tmp_path: Path, sha256: str) -> Path:
    fixes = tmp_path / f"fix-{sha256[:4]}.jsonl"
    fixes.write_text(json.dumps({"sha256": sha256, "page": 1, "reviewed": True}) + "\n")
    return fixes


def _only_the_last_is_read(
    out: Path, tmp_path: Path, source: str, readings: list[tuple[str, str]]
) -> None:
    """``docvlm review --json``, ``export`` and ``correct`` see only the last reading."""
    (last_sha, last_text), (first_sha, _) = readings[-1], readings[0]
    code, stdout, stderr = _cli("review", str(out), "--json", "--limit", "0")
    assert code == 0, stderr
    assert {(i["source"], i["sha256"]) for i in json.loads(stdout)} == {(source, last_sha)}
    back = tmp_path / f"back-{out.name}.jsonl"
    code, _, stderr = _cli("export", str(out), str(back))
    assert code == 0, stderr
    (exported,) = [json.loads(line) for line in back.read_text().splitlines()]
    assert exported["sha256"] == last_sha
    assert exported["pages"][0]["results"][0]["raw"] == last_text
    code, _, stderr = _cli("correct", str(out), str(_fixes(tmp_path, last_sha)))
    assert code == 0 and "applied 1 correction(s), refused 0" in stderr, stderr
    code, _, stderr = _cli("correct", str(out), str(_fixes(tmp_path, first_sha)))
    assert code == ExitCode.FAILED
    assert f"no record of a source with sha256 {first_sha}" in stderr


@pytest.mark.parametrize("part_format", ["jsonl", "parquet"])
def test_ray_parts_are_read_in_write_order_and_the_last_of_a_source_counts(
    part_format: str, tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    pdf = make_pdf(1, name="a.pdf")
    out = tmp_path / f"ray.{part_format}"
    parts = Parts(Output.parts(out, "jsonl" if part_format == "jsonl" else "parquet"))
    parts.prepare("a" * 32, "{}", redo=False)
    names = []
    for sha256, text in READINGS:  # three Ray runs; the source's bytes changed each time
        names.append(parts.write([_read(pdf, text, sha256)]))
        time.sleep(0.05)  # runs are apart in time (a file system's clock ticks coarsely)
    assert sorted(names) == names[::-1]  # the digests' order is not the write order
    output = Output.existing(out)
    assert [d.sha256 for d in output.records()] == [sha for sha, _ in READINGS]
    ((folder, stored),) = list(output.stored())
    assert folder is None and stored.sha256 == READINGS[-1][0]
    assert stored.pages[0].results[0].raw == READINGS[-1][1]
    assert parts.written() == {SOURCE: (READINGS[-1][0], stored.status)}
    assert list(parts.parts()) == [f"{parts.root}/{name}" for name in names]
    _only_the_last_is_read(out, tmp_path, SOURCE, READINGS)


def test_a_jsonl_file_holding_two_records_of_a_source_is_read_as_its_last(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    """A run killed before compaction leaves an earlier record of a source in the file."""
    pdf = make_pdf(1, name="a.pdf")
    out = tmp_path / "out.jsonl"
    readings = [READINGS[2], READINGS[0]]  # the last line is not the greatest hash
    out.write_text("".join(_read(pdf, t, s).model_dump_json() + "\n" for s, t in readings))
    _only_the_last_is_read(out, tmp_path, SOURCE, readings)
    ((_, stored),) = list(Output.existing(out).stored())
    assert stored.sha256 == readings[-1][0]
    assert stored.pages[0].results[0].raw == readings[-1][1]


# --- each runner keeps out of the other's folder ---------------------------------------


def _names(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("spelling", ["ray.parquet", "ray.parquet/"])
def test_a_local_run_into_a_ray_folder_of_parts_is_refused_before_it_writes(
    spelling: str, tmp_path: Path, make_pdf: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing to fetch: refused before a model
    pdf = make_pdf(1, name="a.pdf")
    out = tmp_path / "ray.parquet"
    parts = Parts(Output.parts(out))  # what docvlm convert --ray --out ray.parquet writes
    parts.prepare("a" * 32, "{}", redo=False)
    parts.write([_read(pdf, "a line", "1" * 64)])
    before = _names(out)
    assert "_job.json" in before and len(before) == 3  # _job.json, _staging, one part
    engine = ScriptedEngine(lambda request: "a line")
    with (
        DocVLM(Settings(dpi=36), engine_factory=lambda c, s: engine, checkpoint="s") as client,
        pytest.raises(SettingsError, match="a folder of parts the Ray runner wrote"),
    ):
        list(client.convert_many([pdf], tasks=["text"], out=f"{tmp_path}/{spelling}"))
    code, _, stderr = _cli("convert", str(pdf), "--out", f"{tmp_path}/{spelling}")
    assert code == ExitCode.USAGE, stderr
    assert (
        f"error: {out}/: a folder of parts the Ray runner wrote (it holds _job.json): use "
        "--ray to write into it, or another --out"
    ) in stderr
    assert _names(out) == before  # no manifest, nothing else written
    assert not list(tmp_path.glob("*.lock"))
    ((_, stored),) = list(Output.existing(out).stored())  # and still read as it was
    assert stored.sha256 == "1" * 64


@pytest.mark.parametrize("spelling", ["DIR/", "local.parquet/"])
def test_the_ray_runner_refuses_a_folder_the_local_runner_wrote(
    spelling: str, tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    pdf = make_pdf(1, name="a.pdf")
    engine = ScriptedEngine(lambda request: "a line")
    with DocVLM(Settings(dpi=36), engine_factory=lambda c, s: engine, checkpoint="s") as client:
        (written,) = client.convert_many([pdf], tasks=["text"], out=f"{tmp_path}/{spelling}")
    folder = tmp_path / spelling.rstrip("/")
    before = _names(folder)
    parts = Parts(Output.parts(folder))
    refused = re.escape(f"{folder}/: an output the local runner wrote (it holds _manifest.sqlite)")
    with pytest.raises(SettingsError, match=refused):
        parts.prepare("a" * 32, "{}", redo=True)  # redo would have deleted its parts
    assert _names(folder) == before  # no _job.json, no _staging, nothing deleted
    (record,) = Output.existing(folder).records()
    assert record.sha256 == written.sha256 and record.pages == written.pages
    if spelling == "DIR/":  # a folder per document, its manifest gone: still the local one
        (folder / "_manifest.sqlite").unlink()
        with pytest.raises(SettingsError, match=re.escape("(it holds NAME/document.json)")):
            parts.prepare("a" * 32, "{}", redo=False)
    if importlib.util.find_spec("ray") is None:
        return  # docvlm convert --ray says only that Ray is missing
    code, _, stderr = _cli("convert", str(pdf), "--ray", "local", "--out", str(folder))
    assert code == ExitCode.USAGE, stderr  # refused before Ray starts or a model is read
    assert f"{folder}/: an output the local runner wrote" in stderr
    assert not (folder / "_job.json").exists() and not (folder / "_staging").exists()
