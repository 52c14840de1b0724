"""The Ray Data runner against the local runner, on a local Ray (2 CPUs) and the tiny
checkpoint: the same records, a rerun that converts nothing, a lost part redone, an actor
killed mid-job."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from docvlm import DocVLM, Settings
from docvlm.archive.pipeline import Options
from docvlm.archive.runner import run_job
from docvlm.cli import app
from docvlm.engines import Engine, Generation, Request
from docvlm.errors import ExitCode
from docvlm.testing import ScriptedEngine

# Ray's own notices (deprecations inside ray.data) are not ours to act on
pytestmark = pytest.mark.filterwarnings("ignore:::ray.*")
# one request per batch: what the tiny model writes (near-ties in random weights) and
# its log-probabilities may differ with the batch a page is padded into, and which pages
# meet in a batch depends on timing in the local runner, not in Ray's per-document calls
SETTINGS = Settings(dpi=36, batch_size=1)
OPTIONS = Options(tasks=("text",), dpi=36, max_new_tokens=6)


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the dying engine below
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two scans (2 pages, 1 page), a damaged PDF, and text named .pdf."""
    from conftest import page_image

    folder = tmp_path_factory.mktemp("ray") / "in"
    folder.mkdir()
    for index, count in enumerate([2, 1]):
        pages = [page_image(k + 1, (500, 640)) for k in range(count)]
        path = folder / f"doc{index}.pdf"
        pages[0].save(path, "PDF", resolution=100.0, save_all=True, append_images=pages[1:])
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n garbage")
    (folder / "notes.pdf").write_text("not a PDF at all\n")
    return folder


def _local(folder: Path, checkpoint: Path, out: Path) -> None:
    with DocVLM(SETTINGS, checkpoint=str(checkpoint)) as client:
        run_job(client, [folder], OPTIONS, out)


def _jsonl(paths: Sequence[Path]) -> list[dict[str, Any]]:
    records = [json.loads(line) for p in paths for line in p.read_text().splitlines()]
    return sorted(records, key=lambda r: str(r["source"]))


LINE = "a line<loc0100><loc0100><loc0300><loc0900>"


def _answer(request: Request) -> str:
    return f"{LINE}{request.image.size[0]}"


class DiesOnce:
    """A scripted engine whose actor dies (``os._exit``) on its first batch, once."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __call__(self, checkpoint: str, settings: Settings) -> Engine:
        marker = self.marker

        class Dying(ScriptedEngine):
            def generate(self, requests: Sequence[Request]) -> list[Generation]:
                if not marker.exists():
                    marker.write_text("killed")
                    os._exit(1)
                return super().generate(requests)

        return Dying(_answer, record=False)


def test_ray_writes_the_local_records_and_a_rerun_converts_nothing(
    ray_local: Any, folder: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from docvlm.distributed import ScaleOptions, convert_dataset

    _local(folder, tiny_checkpoint, tmp_path / "local.jsonl")
    dest = tmp_path / "ray.jsonl"
    summary = convert_dataset(
        [folder],
        dest,
        OPTIONS,
        settings=SETTINGS,
        checkpoint=str(tiny_checkpoint),
        scale=ScaleOptions(documents_per_call=1, documents_per_part=2),
    )
    expected = _jsonl([tmp_path / "local.jsonl"])
    parts = sorted(dest.glob("part-*.jsonl"))
    assert _jsonl(parts) == expected  # record for record, failed files included
    assert [Path(r["source"]).name for r in expected] == [
        "broken.pdf",
        "doc0.pdf",
        "doc1.pdf",
        "notes.pdf",
    ]
    assert (summary.files_done, summary.files_failed, summary.pages_done) == (2, 2, 3)
    assert summary.exit_code == ExitCode.FAILED
    before = {p.name: p.read_bytes() for p in parts}
    # the same command again, through the CLI on the running Ray: nothing converted
    result = CliRunner().invoke(
        app,
        [
            "convert",
            str(folder),
            "--ray",
            "auto",
            "--out",
            str(dest),
            "--checkpoint",
            str(tiny_checkpoint),
            "--dpi",
            "36",
            "--max-new-tokens",
            "6",
            "--log-format",
            "json",
        ],
    )
    assert result.exit_code == ExitCode.FAILED, result.output  # the bad files stay failed
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    (again,) = [e for e in events if e["event"] == "summary"]
    assert again["files_skipped"] == 4 and again["pages_done"] == 0
    assert {p.name: p.read_bytes() for p in dest.glob("part-*.jsonl")} == before


def test_ray_parquet_rows_equal_the_local_ones_through_a_killed_actor_and_a_lost_part(
    ray_local: Any, folder: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from docvlm.distributed import ScaleOptions, convert_dataset

    def rows(path: Path) -> list[dict[str, Any]]:
        found = pq.read_table(path).to_pylist()
        return sorted(found, key=lambda r: (r["source"], r["page"] or 0, r["result_index"] or 0))

    engine = ScriptedEngine(_answer)
    with DocVLM(SETTINGS, checkpoint="scripted", engine_factory=lambda c, s: engine) as client:
        run_job(client, [folder], OPTIONS, tmp_path / "local.parquet")
    marker, dest = tmp_path / "killed", tmp_path / "ray.parquet"

    def run() -> Any:
        return convert_dataset(
            [folder],
            dest,
            OPTIONS,
            settings=SETTINGS,
            checkpoint="scripted",
            engine_factory=DiesOnce(marker),
            scale=ScaleOptions(documents_per_call=2, documents_per_part=1),
        )

    summary = run()
    assert marker.exists()  # the actor died mid-job; Ray restarted it and retried its batch
    assert (summary.files_done, summary.files_failed, summary.pages_done) == (2, 2, 3)
    expected = rows(tmp_path / "local.parquet")
    assert rows(dest) == expected and len(expected) == 5  # 3 pages + 2 failed files
    assert all(r["text"] and r["text"].startswith("a line") for r in expected if r["page"])
    assert pq.read_schema(next(dest.glob("part-*.parquet"))).equals(
        pq.read_schema(tmp_path / "local.parquet"), check_metadata=False
    )
    lost = next(p for p in dest.glob("part-*.parquet") if "doc0.pdf" in str(pq.read_table(p)))
    lost.unlink()  # as if the job had been killed before writing it
    summary = run()
    assert (summary.files_done, summary.files_skipped, summary.pages_done) == (1, 3, 2)
    assert rows(dest) == expected


def test_a_destination_of_another_job_is_refused(tmp_path: Path) -> None:
    from docvlm.archive.output import Output
    from docvlm.distributed.store import Parts

    dest = Parts(Output.parts(tmp_path / "out.parquet"))
    dest.prepare("a" * 32, "{}", redo=False)
    with pytest.raises(ValueError, match="another job"):
        dest.prepare("b" * 32, "{}", redo=False)
    (tmp_path / "out.parquet" / "_staging").mkdir(exist_ok=True)
    (tmp_path / "out.parquet" / "_staging" / "123-part-x.parquet").write_bytes(b"cut short")
    dest.prepare("b" * 32, "{}", redo=True)  # redo starts the folder over
    assert list((tmp_path / "out.parquet" / "_staging").iterdir()) == []  # a killed write
    assert json.loads((tmp_path / "out.parquet" / "_job.json").read_text())["fingerprint"] == (
        "b" * 32
    )


def test_ray_without_ray_installed_is_one_line(
    monkeypatch: pytest.MonkeyPatch, folder: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = CliRunner().invoke(
        app, ["convert", str(folder), "--ray", "local", "--out", str(tmp_path / "o.parquet")]
    )
    assert result.exit_code == ExitCode.CRASHED  # an extra not installed
    assert result.output.strip() == (
        "error: running on Ray needs Ray Data: pip install 'docvlm[ray]'"
    )


def test_uri_sources_are_listed_and_read_as_the_local_runner_names_them(
    folder: Path, tmp_path: Path
) -> None:
    """Sources behind a URI (file:// here; s3:// goes through the same pyarrow calls)."""
    import zipfile

    from docvlm.archive.records import content_hash
    from docvlm.distributed.stages import Doc, read
    from docvlm.distributed.store import list_uri

    remote = tmp_path / "bucket"
    shutil.copytree(folder, remote)
    with zipfile.ZipFile(remote / "batch.zip", "w") as archive:
        archive.write(folder / "doc1.pdf", "inner/doc1.pdf")
        archive.writestr("inner/.hidden.pdf", b"%PDF-1.4")
    (remote / "README.txt").write_text("not a document")
    (remote / ".cache.pdf").write_bytes(b"%PDF-1.4")
    skipped: list[str] = []
    uri = f"file://{remote}"
    names = list_uri(uri, (), ("notes*",), skipped.append)
    assert [n.removeprefix(uri + "/") for n in names] == [
        "batch.zip",
        "broken.pdf",
        "doc0.pdf",
        "doc1.pdf",
    ]
    assert sorted(Path(s).name for s in skipped) == ["README.txt", "notes.pdf"]
    zipped = f"{uri}/batch.zip"
    doc1 = (folder / "doc1.pdf").read_bytes()
    written = {f"{uri}/doc0.pdf": (content_hash((folder / "doc0.pdf").read_bytes()), "success")}
    docs = read([Doc(name, path=name) for name in names], written, SETTINGS)
    by_name = {doc.name: doc for doc in docs}
    assert by_name[f"{zipped}!inner/doc1.pdf"].data == doc1  # members named ARCHIVE!MEMBER
    assert by_name[f"{zipped}!inner/doc1.pdf"].sha256 == content_hash(doc1)
    assert by_name[f"{uri}/doc0.pdf"].kind == "skip"  # already in the destination
    assert by_name[f"{uri}/doc1.pdf"].kind == "read"
    assert len(docs) == 4  # the archive's hidden member is left out, as locally


def test_the_ray_module_loads_without_importing_ray() -> None:
    import subprocess

    code = "import sys, docvlm.distributed, docvlm.cli; print('ray' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.stdout.strip() == "False", found.stderr


def test_a_ray_redo_writes_the_corrections_into_its_parts(
    ray_local: Any, folder: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A person's correction of a Ray output (``docvlm correct`` on its folder of parts)
    is in the parts a ``--redo`` writes again, as the local runner's sinks keep it."""
    from docvlm.archive.edits import Correction
    from docvlm.archive.output import Output
    from docvlm.distributed import ScaleOptions, convert_dataset

    dest = tmp_path / "fixed.jsonl"

    def run(redo: bool) -> list[Any]:
        convert_dataset(
            [folder],
            dest,
            OPTIONS,
            settings=SETTINGS,
            checkpoint=str(tiny_checkpoint),
            redo=redo,
            scale=ScaleOptions(documents_per_call=1, documents_per_part=2),
        )
        return sorted(Output.existing(dest).records(), key=lambda d: d.source)

    read = next(d for d in run(redo=False) if d.source.endswith("doc1.pdf"))
    fixed = "Corrected by a person"
    Output.existing(dest).corrections().apply(
        Correction(sha256=str(read.sha256), page=1, result=0, value=fixed)
    )
    again = next(d for d in run(redo=True) if d.source.endswith("doc1.pdf"))
    result = again.pages[0].results[0]
    assert result.corrected and result.summary() == fixed
    assert result.raw == read.pages[0].results[0].raw  # the model's own output kept
