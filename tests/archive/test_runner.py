from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from docvlm import DocVLM, Settings, json_schema
from docvlm.archive.output import Output
from docvlm.archive.pipeline import Options
from docvlm.archive.progress import JsonLog
from docvlm.archive.runner import Run
from docvlm.engines import Generation, Request
from docvlm.errors import ExitCode
from docvlm.testing import ScriptedEngine

LINE = "a line<loc0000><loc0000><loc0100><loc0900>"


class Counting(ScriptedEngine):
    """A scripted engine that counts calls and can fail or wait."""

    def __init__(
        self, fail: Callable[[int, int], BaseException | None] | None = None, seconds: float = 0.0
    ) -> None:
        super().__init__(lambda r: LINE, resolution=448)
        self.calls: list[int] = []
        self._fail = fail
        self._seconds = seconds
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        with self._lock:
            self.calls.append(len(requests))
            call = len(self.calls)
        error = self._fail(call, len(requests)) if self._fail else None
        if error is not None:
            raise error
        time.sleep(self._seconds)
        return super().generate(requests)


def _client(engine: ScriptedEngine, **settings: object) -> DocVLM:
    values: dict[str, object] = {"dpi": 36} | settings
    return DocVLM(Settings(**values), engine_factory=lambda c, s: engine, checkpoint="scripted")


def _folder(tmp_path: Path, make_pdf: Callable[..., Path], pages: Sequence[int]) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for index, count in enumerate(pages):
        shutil.move(make_pdf(count, name=f"doc{index}.pdf"), folder / f"doc{index}.pdf")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n garbage")
    return folder


def test_resume_skips_what_is_done_and_reads_a_copy_once(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    folder = _folder(tmp_path, make_pdf, [2, 3])
    shutil.copy(folder / "doc1.pdf", folder / "copy-of-doc1.pdf")
    out = tmp_path / "out.jsonl"
    engine = Counting()
    with _client(engine) as client:
        run = Run(client, Options(tasks=("text",), dpi=36), out)
        written = list(run.documents([folder]))
    assert len(engine.requests) == 5  # 2 + 3 pages; the copy is not read again
    assert run.summary is not None and run.summary.exit_code == ExitCode.FAILED
    records = [json.loads(line) for line in out.read_text().splitlines()]
    names = sorted(Path(r["source"]).name for r in records)
    assert names == ["broken.pdf", "copy-of-doc1.pdf", "doc0.pdf", "doc1.pdf"]
    for record in records:
        jsonschema.validate(record, json_schema("document"))
    by_name = {Path(d.source).name: d for d in written}
    copy, original = by_name["copy-of-doc1.pdf"], by_name["doc1.pdf"]
    assert copy.sha256 == original.sha256 and len(copy.pages) == 3
    assert all(r.source == copy.source for p in copy.pages for r in p.results)
    assert by_name["broken.pdf"].status == "failure" and by_name["broken.pdf"].error
    # the same command again: nothing read, nothing written twice
    again = Counting()
    log = io.StringIO()
    with _client(again) as client:
        rerun = Run(client, Options(tasks=("text",), dpi=36), out, observer=JsonLog(log))
        assert list(rerun.documents([folder])) == []
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    skipped = {Path(e["source"]).name: e["status"] for e in events if e["event"] == "skipped"}
    assert skipped["broken.pdf"] == "failure" and skipped["doc0.pdf"] == "success"
    assert events[0] == {"event": "start", "files": 4} and events[-1]["event"] == "summary"
    assert again.requests == [] and rerun.summary is not None
    assert rerun.summary.files_skipped == 4
    assert rerun.summary.exit_code == ExitCode.FAILED  # the broken file is still recorded failed
    assert len(out.read_text().splitlines()) == 4
    # another job key (dpi) is another job: read again
    other = Counting()
    with _client(other) as client:
        list(Run(client, Options(tasks=("text",), dpi=40), out, redo=True).documents([folder]))
    assert len(other.requests) == 5 and len(out.read_text().splitlines()) == 4


def test_an_interrupted_document_resumes_at_its_next_page(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.move(make_pdf(6, name="long.pdf"), folder / "long.pdf")
    out = tmp_path / "out.jsonl"

    def die_on_third_call(call: int, size: int) -> BaseException | None:
        return SystemExit("killed") if call == 3 else None

    engine = Counting(die_on_third_call)
    # one page per engine call; SystemExit is raised on the generation thread, re-raised here
    with _client(engine, batch_size=1) as client, pytest.raises(SystemExit):
        list(Run(client, Options(tasks=("text",), dpi=36), out).documents([folder]))
    assert out.read_text() == ""  # the document was not finished
    with sqlite3.connect(Output.parse(out).manifest_file) as db:
        assert db.execute("SELECT count(*) FROM pages").fetchone()[0] >= 2
    resumed = Counting()
    with _client(resumed) as client:
        run = Run(client, Options(tasks=("text",), dpi=36), out)
        (document,) = run.documents([folder])
    assert [p.number for p in document.pages] == [1, 2, 3, 4, 5, 6]
    assert run.summary is not None and run.summary.pages_reused >= 2
    assert len(resumed.requests) == 6 - run.summary.pages_reused
    with sqlite3.connect(Output.parse(out).manifest_file) as db:
        rows = db.execute("SELECT page, count(*) FROM pages GROUP BY sha256, job, page").fetchall()
    assert sorted(rows) == [(n, 1) for n in range(1, 7)]


def test_engine_failures_are_retried_then_recorded(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    class OutOfMemoryError(RuntimeError):  # named like torch's
        pass

    def oom_over_one(call: int, size: int) -> BaseException | None:
        return OutOfMemoryError("CUDA out of memory") if size > 1 else None

    folder = _folder(tmp_path, make_pdf, [4])
    engine = Counting(oom_over_one, seconds=0.3)  # slow: pages queue up, batches form
    with _client(engine) as client:
        documents = {Path(d.source).name: d for d in client.convert_many([folder])}
    assert documents["doc0.pdf"].status == "success"  # halved down to one request a call
    assert max(engine.calls) > 1 and engine.requests and len(engine.requests) == 4

    def always(call: int, size: int) -> BaseException | None:
        return RuntimeError("device lost")

    broken = Counting(always)
    with _client(broken) as client:
        run = Run(client, Options(tasks=("text",), dpi=36, retries=2))
        (doc,) = [d for d in run.documents([folder]) if d.source.endswith("doc0.pdf")]
    assert doc.status == "failure"
    assert all(p.error == "the engine failed (RuntimeError: device lost)" for p in doc.pages)
    assert sum(broken.calls) == 3 * 4  # each page: the first try and two retries


def test_max_error_rate_stops_a_job_that_fails_wholesale(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(30):
        (folder / f"bad{index:02d}.pdf").write_bytes(f"%PDF-1.4\n no objects {index}".encode())
    out = tmp_path / "out.jsonl"
    with _client(Counting()) as client:
        run = Run(client, Options(tasks=("text",), dpi=36), out, max_error_rate=0.5)
        written = list(run.documents([folder]))
    assert run.summary is not None and run.summary.stopped
    assert run.summary.exit_code == ExitCode.STOPPED
    assert 10 <= len(written) < 30 and len(out.read_text().splitlines()) == len(written)


def test_one_request_stream_across_documents(tmp_path: Path, make_pdf: Callable[..., Path]) -> None:
    folder = _folder(tmp_path, make_pdf, [1] * 8)
    (folder / "broken.pdf").unlink()
    engine = Counting(seconds=0.3)  # a slow engine: pages of other documents queue up
    with _client(engine, batch_size=4) as client:
        run = Run(client, Options(tasks=("text",), dpi=36))
        documents = list(run.documents([folder]))
    assert len(documents) == 8 and all(d.status == "success" for d in documents)
    assert max(engine.calls) > 1  # one engine call held pages of several documents
    assert len(engine.calls) < 8
    assert run.summary is not None and run.summary.exit_code == ExitCode.OK
    assert 0 < run.summary.engine_busy <= 1


def test_client_gives_the_engine_every_request_at_once(make_pdf: Callable[..., Path]) -> None:
    engine = Counting()
    with _client(engine, batch_size=1, dpi=150) as client:
        (result,) = client.read_text(make_pdf(1))  # 1275 x 1650 px: 4 x 5 tiles of 448 px
    assert engine.calls == [20] and result.page == 1  # not 20 calls of batch_size 1


def test_layout_mode_through_the_runner_equals_convert(tmp_path: Path) -> None:
    from tests.reading.test_layout import _engine, _two_column_page

    source = tmp_path / "page.png"
    _two_column_page().save(source)
    tasks = ["text", "table", "molecule", "caption"]
    engine = _engine([])
    with DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="x") as client:
        alone = client.convert(source, tasks=tasks, layout=True)
        (streamed,) = client.convert_many([source], tasks=tasks, layout=True)
    assert streamed.pages == alone.pages and streamed.tables == alone.tables
    assert [r.task for r in streamed.pages[0].results][:2] == ["layout", "text"]
    assert streamed.sha256 == alone.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


def test_cli_stops_with_exit_3_and_reports(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from docvlm.cli import app

    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(30):
        (folder / f"bad{index:02d}.pdf").write_bytes(f"%PDF-1.4\n broken {index}".encode())
    out = tmp_path / "out.jsonl"
    runner = CliRunner()
    common = ["convert", str(folder), "-c", str(tiny_checkpoint), "-o", str(out)]
    result = runner.invoke(app, [*common, "--max-error-rate", "0.5", "--log-format", "rich"])
    assert result.exit_code == ExitCode.STOPPED, result.output
    stopped = "(stopped: 100% of files failed, over the --max-error-rate of 50%)"
    assert stopped in result.stderr and "exit 3" in result.stderr
    # each failed file is named once (which 10 depends on the render lanes' timing)
    named = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(named) == 10 and all("cannot open the PDF" in line for line in named)
    assert len({line.split(":")[1] for line in named}) == 10
    written = len(out.read_text().splitlines())
    assert written == 10  # stopped when the limit was crossed (judged after 10), not at 30
    status = runner.invoke(app, ["status", str(out)])
    assert status.exit_code == 0
    assert f"files: 0 done, 0 partial, {written} failed" in status.stdout
    refused = runner.invoke(app, ["convert", str(folder), "-o", str(tmp_path / "x.docx")])
    assert refused.exit_code == 2 and "cannot tell the output format" in refused.stderr


class _CrashOnce:
    """A connection for ``docvlm.reading.pdf.serve`` that kills the worker at its first render."""

    def __init__(self, connection: Any, marker: Path) -> None:
        self._connection, self._marker = connection, marker

    def recv(self) -> Any:
        request = self._connection.recv()
        if request[0] == "render" and not self._marker.exists():
            self._marker.touch()
            os._exit(1)  # the renderer dies mid-page, as a segfault would
        return request

    def send(self, reply: Any) -> None:
        self._connection.send(reply)


def crash_once(connection: Any) -> None:
    """A render worker loop (``module:function`` target) that crashes once per marker."""
    from docvlm.reading.pdf import serve

    serve(_CrashOnce(connection, Path(os.environ["DOCVLM_TEST_CRASH_MARKER"])))  # type: ignore[arg-type]


def test_a_crashed_render_worker_is_retried(
    tmp_path: Path, make_pdf: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import docvlm.archive.pipeline
    from docvlm.reading.pdf import RenderWorker

    class Crashing(RenderWorker):
        def __init__(self, timeout: float) -> None:
            super().__init__(timeout, target="test_runner:crash_once")

    monkeypatch.setenv("DOCVLM_TEST_CRASH_MARKER", str(tmp_path / "crashed"))
    monkeypatch.setattr(docvlm.archive.pipeline, "RenderWorker", Crashing)
    folder = _folder(tmp_path, make_pdf, [3])
    with _client(Counting()) as client:
        run = Run(client, Options(tasks=("text",), dpi=36, render_workers=1))
        documents = {Path(d.source).name: d for d in run.documents([folder / "doc0.pdf"])}
    assert (tmp_path / "crashed").exists()  # it did crash
    page_one = documents["doc0.pdf"].pages[0]
    assert documents["doc0.pdf"].status == "success" and page_one.status == "ok"


def test_transformers_engine_bounds_its_batch(tiny_checkpoint: Path) -> None:
    from docvlm.engines.hf import TransformersEngine, load_model

    model, processor, device = load_model(str(tiny_checkpoint), Settings(device="cpu"))
    engine = TransformersEngine("tiny", model, processor, device, batch_size=2)
    seen: list[int] = []
    inner = engine.generate

    def spy(requests: Sequence[Request]) -> list[Generation]:
        seen.append(len(requests))
        return inner(requests)

    engine.generate = spy  # type: ignore[method-assign]
    from PIL import Image

    image = Image.new("RGB", (224, 224), "white")
    found = engine.generate([Request(image, "ocr", 2) for _ in range(5)])
    assert len(found) == 5 and seen == [5, 2, 2, 1]  # all given at once, run 2 at a time
