"""``Output``: every spelling of a destination, parsed once, and the places beside it;
two runs on two spellings of one destination, local or on Ray, are kept apart."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docvlm import DocVLM, Settings
from docvlm.archive.output import DESTINATIONS, Output, OutputError
from docvlm.archive.pipeline import Options
from docvlm.archive.runner import Run
from docvlm.cli import app
from docvlm.engines import Generation, Request
from docvlm.errors import DestinationBusyError, ExitCode, SettingsError
from docvlm.testing import ScriptedEngine

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = Options(tasks=("text",), dpi=36)

# spelling -> kind, manifest, lock, corrections log (in the folder the test runs in;
# m.parquet is a folder there, ~ is h/)
SPELLINGS = [
    row.split()
    for row in """
x.jsonl     jsonl          x.jsonl.manifest.sqlite     x.jsonl.lock     x.jsonl.corrections.jsonl
x.NDJSON    jsonl          x.NDJSON.manifest.sqlite    x.NDJSON.lock    x.NDJSON.corrections.jsonl
x.parquet   parquet        x.parquet.manifest.sqlite   x.parquet.lock   x.parquet.corrections.jsonl
x.parquet/  parquet-parts  x.parquet/_manifest.sqlite  x.parquet.lock   x.parquet/_corrections.jsonl
x.jsonl/    jsonl-parts    x.jsonl/_manifest.sqlite    x.jsonl.lock     x.jsonl/_corrections.jsonl
DIR         folder         DIR/_manifest.sqlite        DIR.lock         DIR/_corrections.jsonl
DIR/        folder         DIR/_manifest.sqlite        DIR.lock         DIR/_corrections.jsonl
a/b.v2/     folder         a/b.v2/_manifest.sqlite     a/b.v2.lock      a/b.v2/_corrections.jsonl
m.parquet   parquet-parts  m.parquet/_manifest.sqlite  m.parquet.lock   m.parquet/_corrections.jsonl
~/x.jsonl   jsonl          h/x.jsonl.manifest.sqlite   h/x.jsonl.lock   h/x.jsonl.corrections.jsonl
~/DIR       folder         h/DIR/_manifest.sqlite      h/DIR.lock       h/DIR/_corrections.jsonl
""".strip().splitlines()
]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the working folder, ``~`` in it, and ``m.parquet`` a folder there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    (tmp_path / "m.parquet").mkdir()
    return tmp_path.resolve()


@pytest.mark.parametrize(("spelling", "kind", "manifest", "lock", "log"), SPELLINGS)
def test_each_spelling_names_its_kind_and_places(
    here: Path, spelling: str, kind: str, manifest: str, lock: str, log: str
) -> None:
    output = Output.parse(spelling)
    assert output.kind == kind
    assert (output.manifest_file.resolve(), output.lock_file) == (here / manifest, here / lock)
    assert output.corrections_file.resolve() == here / log
    folder = kind in ("folder", "parquet-parts", "jsonl-parts")
    assert str(output).endswith("/") == folder
    assert Output.parse(str(output)) == output  # spelled back, it parses the same
    assert not list(here.glob("*.lock")) and not (here / "DIR").exists()  # parsing makes nothing


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("s3://b/out.parquet/", "parquet-parts"),
        ("s3://b/out.jsonl", "jsonl"),
        ("gs://b/x", "folder"),
    ],
)
def test_a_uri_is_the_ray_runners_and_has_no_lock(uri: str, kind: str) -> None:
    output = Output.parse(uri)
    assert (output.kind, output.is_uri, output.lock_file) == (kind, True, None)
    assert str(output) == (uri.rstrip("/") + "/" if kind != "jsonl" else uri)
    with output.lock():  # nothing to hold
        pass
    for place in ("manifest_file", "corrections_file"):
        with pytest.raises(SettingsError, match="written by the Ray runner only"):
            getattr(output, place)
    with pytest.raises(SettingsError, match="Ray runner only"):
        output.check_local()


def test_the_ray_runner_names_a_folder_of_parts_from_any_spelling() -> None:
    assert Output.parts("x.jsonl") == Output.parse("x.jsonl/")
    assert Output.parts("x.ndjson/").kind == "jsonl-parts"
    assert Output.parts("x.parquet") == Output.parse("x.parquet/")
    assert Output.parts("out") == Output.parts("out/") == Output("parquet-parts", Path("out"))
    assert Output.parts("out.jsonl", "parquet").kind == "parquet-parts"  # output_format= wins
    assert Output.parts("s3://b/out", "jsonl") == Output("jsonl-parts", "s3://b/out")


def test_bad_spellings_are_refused_with_their_cause(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--out DIR/ --formats md"):
        Output.parse(tmp_path / "x.md")
    with pytest.raises(ValueError, match=r"cannot tell the output format from '\.xyz'"):
        Output.parse(tmp_path / "x.xyz")
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(SettingsError, match=r"x\.parquet/: a file of that name is in the way"):
        Output.parse(f"{tmp_path}/x.parquet/")
    with (
        _client(ScriptedEngine(lambda r: "")) as client,
        pytest.raises(SettingsError, match=r"use --ray, or --out .*x\.jsonl for one JSON Lines"),
    ):
        Run(client, OPTIONS, f"{tmp_path}/x.jsonl/")


def test_an_existing_output_is_told_by_what_is_there(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    pdf = make_pdf(1, name="a.pdf")
    for spelling in ("out.jsonl", "out.parquet", "parts.parquet/", "DIR/"):
        with _client(ScriptedEngine(lambda r: "a line")) as client:
            list(client.convert_many([pdf], tasks=["text"], out=f"{tmp_path}/{spelling}"))
    (tmp_path / "renamed.txt").write_bytes((tmp_path / "out.jsonl").read_bytes())
    ray_parts = tmp_path / "ray.jsonl"
    ray_parts.mkdir()
    (ray_parts / "part-0a1b.jsonl").write_bytes((tmp_path / "out.jsonl").read_bytes())
    found = {
        name: Output.existing(tmp_path / name).kind
        for name in ("out.jsonl", "renamed.txt", "out.parquet", "parts.parquet", "DIR", "ray.jsonl")
    }
    assert found == {
        "out.jsonl": "jsonl",
        "renamed.txt": "jsonl",  # by its first bytes
        "out.parquet": "parquet",
        "parts.parquet": "parquet-parts",
        "DIR": "folder",
        "ray.jsonl": "jsonl-parts",
    }
    (written,) = Output.existing(tmp_path / "out.jsonl").records()
    for name in found:
        (record,) = Output.existing(tmp_path / name).records()
        if name.endswith(".parquet"):  # rows grouped back: the same record, read back
            record, written_row = _key(record), _key(written)
            assert record == written_row, name
        else:
            assert record == written, name
    (tmp_path / "notes.txt").write_text("not records\n")
    for name in ("notes.txt", "missing.jsonl", "in"):
        (tmp_path / "in").mkdir(exist_ok=True)
        with pytest.raises(OutputError, match=f"{name}: not a conversion output"):
            Output.existing(tmp_path / name)


def test_the_ray_runners_jsonl_parts_are_read_as_any_output(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    pdf = make_pdf(2, name="a.pdf")
    with _client(ScriptedEngine(lambda r: "a line")) as client:
        (written,) = client.convert_many([pdf], tasks=["text"], out=tmp_path / "one.jsonl")
    parts = tmp_path / "ray.jsonl"  # what docvlm convert --ray --out ray.jsonl writes
    parts.mkdir()
    (parts / "part-0a1b.jsonl").write_bytes((tmp_path / "one.jsonl").read_bytes())
    (parts / "_job.json").write_text("{}")
    reviewed = CliRunner().invoke(app, ["review", str(parts), "--json", "--limit", "0"])
    assert reviewed.exit_code == 0, reviewed.output
    assert {(i["source"], i["page"]) for i in json.loads(reviewed.stdout)} == {
        (str(pdf), 1),
        (str(pdf), 2),
    }
    exported = CliRunner().invoke(app, ["export", str(parts), str(tmp_path / "back.jsonl")])
    assert exported.exit_code == 0, exported.output
    (back,) = Output.existing(tmp_path / "back.jsonl").records()
    assert back == written
    refused = CliRunner().invoke(app, ["convert", str(pdf), "--out", f"{tmp_path}/new.jsonl/"])
    assert refused.exit_code == ExitCode.USAGE
    assert "written by the Ray runner only: use --ray, or --out" in refused.stderr
    assert not (tmp_path / "new.jsonl").exists()


def _key(document: object) -> tuple[object, ...]:
    from docvlm.document import Document

    assert isinstance(document, Document)
    raws = [(p.number, [r.raw for r in p.results]) for p in document.pages]
    return (document.source, document.sha256, document.status, raws)


def test_docs_etl_lists_each_spelling_as_the_code_parses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "docs" / "etl.md").read_text(encoding="utf-8")
    section = text.split("## Destinations", 1)[1].split("\n#", 1)[0]
    listed = re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)
    assert listed == ["--out", *DESTINATIONS]  # the header, then one row each
    for spelling in DESTINATIONS:
        output = Output.parse(spelling)
        places = (output.manifest_file, output.lock_file, output.corrections_file)
        shown = [p.resolve().relative_to(tmp_path.resolve()) for p in places if p is not None]
        row = f"| `{spelling}` | {output.kind} | " + " | ".join(f"`{p}`" for p in shown) + " |"
        assert row in section, row


# --- two runs at once ---------------------------------------------------------------------


class Held(ScriptedEngine):
    """An engine that says when it is first called, then waits to be let go."""

    def __init__(self) -> None:
        super().__init__(lambda r: "a line")
        self.reading, self.go = threading.Event(), threading.Event()

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        self.reading.set()
        assert self.go.wait(60)
        return super().generate(requests)


def _client(engine: ScriptedEngine) -> DocVLM:
    return DocVLM(Settings(dpi=36), engine_factory=lambda c, s: engine, checkpoint="scripted")


@contextmanager
def _running(out: str, pdf: Path) -> Iterator[tuple[threading.Thread, list[Run]]]:
    """A local run on ``out`` in a thread, reading (so holding the lock) until the end."""
    engine, runs = Held(), []

    def convert() -> None:
        with _client(engine) as client:
            runs.append(run := Run(client, OPTIONS, out))
            list(run.documents([pdf]))

    thread = threading.Thread(target=convert)
    thread.start()
    assert engine.reading.wait(60), "the first run never read"
    try:
        yield thread, runs
    finally:
        engine.go.set()
        thread.join(60)


@pytest.mark.parametrize(("first", "second"), [("DIR", "DIR/"), ("x.parquet", "x.parquet/")])
def test_a_run_on_another_spelling_of_a_busy_destination_is_refused(
    first: str, second: str, tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    pdf = make_pdf(1, name="a.pdf")
    with _running(f"{tmp_path}/{first}", pdf) as (thread, runs):
        refused = Run(_client(ScriptedEngine(lambda r: "")), OPTIONS, f"{tmp_path}/{second}")
        with pytest.raises(DestinationBusyError, match="another run is writing here"):
            list(refused.documents([pdf]))
        assert thread.is_alive()  # refused while the first still runs
    (run,) = runs
    assert run.summary is not None and run.summary.exit_code == ExitCode.OK


def _unreached(checkpoint: str, settings: Settings) -> ScriptedEngine:
    raise AssertionError("the Ray job went on while the destination was busy")


@pytest.mark.parametrize(
    ("ray", "local"), [("x.parquet", "x.parquet"), ("DIR", "DIR/"), ("DIR/", "DIR")]
)
def test_the_ray_driver_and_a_local_run_take_one_lock(
    ray: str, local: str, tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    pytest.importorskip("ray")
    from docvlm.distributed import convert_dataset

    pdf = make_pdf(1, name="a.pdf")
    # a local run writing: the Ray job is refused before it starts Ray
    with (
        _running(f"{tmp_path}/{local}", pdf),
        pytest.raises(DestinationBusyError, match="another run is writing here"),
    ):
        convert_dataset(
            [pdf], f"{tmp_path}/{ray}", OPTIONS, checkpoint="scripted", engine_factory=_unreached
        )
    # a Ray job's driver holding the lock (stopped while it describes the model): the
    # local run is refused; it held the lock only while it ran (in a fresh folder: the
    # local run above left its x.parquet file, in the way of a folder of parts)
    tmp_path = tmp_path / "again"
    describing, go = threading.Event(), threading.Event()

    def factory(checkpoint: str, settings: Settings) -> ScriptedEngine:
        describing.set()
        assert go.wait(60)
        raise RuntimeError("stopped before Ray starts")

    errors: list[BaseException] = []

    def driver() -> None:
        try:
            convert_dataset(
                [pdf], f"{tmp_path}/{ray}", OPTIONS, checkpoint="scripted", engine_factory=factory
            )
        except Exception as error:  # what the factory raised, as the pool passes it on
            errors.append(error)

    thread = threading.Thread(target=driver)
    thread.start()
    try:
        assert describing.wait(60), errors
        local_run = Run(_client(ScriptedEngine(lambda r: "")), OPTIONS, f"{tmp_path}/{local}")
        with pytest.raises(DestinationBusyError, match="another run is writing here"):
            list(local_run.documents([pdf]))
    finally:
        go.set()
        thread.join(60)
    (error,) = errors
    assert "stopped before Ray starts" in str(error)
    with Output.parse(f"{tmp_path}/{local}").lock():  # let go when the driver stopped
        pass
