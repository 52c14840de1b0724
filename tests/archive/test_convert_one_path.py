"""``DocVLM.convert`` is a one-item run of ``convert_many``'s path: the same engine
retries, batch halving on CUDA out of memory and render-crash retries, the same
Document; the caller's page order and cancel signal are carried in."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_runner import LINE, Counting, _client

from docvlm import DocVLM, Settings
from docvlm.engines import Generation, Request
from docvlm.reading.pdf import RenderWorker
from docvlm.testing import ScriptedEngine

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "pdfs"
LOCAL = Path(__file__).resolve().parents[1] / "data" / "corpus" / "pdfs"
FOUR = "multipage/pypdf-samples_pdflatex-4-pages.pdf"


def _corpus(name: str) -> Path:
    for root in (CORPUS, LOCAL):
        if (root / name).is_file():
            return root / name
    pytest.skip(f"{name} is in neither ../shared/corpus nor tests/data/corpus")


def _poppler_pages(path: Path) -> int:
    """The page count poppler's ``pdfinfo`` reads."""
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    return int(next(line for line in info.stdout.splitlines() if line.startswith("Pages:"))[6:])


class OutOfMemoryError(RuntimeError):
    """Named like ``torch.cuda.OutOfMemoryError``, which the batch path halves on."""


def test_convert_retries_a_transient_engine_error(make_pdf: object) -> None:
    engine = Counting(lambda call, size: RuntimeError("CUDA hiccup") if call == 1 else None)
    with _client(engine) as client:
        document = client.convert(make_pdf(2))  # type: ignore[operator]
    assert document.status == "success", document
    assert [p.status for p in document.pages] == ["ok", "ok"]
    assert engine.calls[0] == engine.calls[1]  # the failed batch, asked again
    assert sum(engine.calls[1:]) == 2  # each page's one tile (36 dpi) read once after it


def test_convert_halves_the_batch_on_out_of_memory(make_pdf: object) -> None:
    engine = Counting(
        lambda call, size: OutOfMemoryError("CUDA out of memory") if size > 1 else None
    )
    with _client(engine, dpi=150) as client:  # 1275 x 1650 px: 4 x 5 tiles of 448 px
        document = client.convert(make_pdf(1))  # type: ignore[operator]
    assert document.status == "success", document
    assert engine.calls[0] == 20  # every tile at once, then halved down to one at a time
    assert sum(1 for size in engine.calls if size == 1) == 20


def test_convert_retries_a_crashed_render_worker(
    tmp_path: Path, make_pdf: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import docvlm.client

    class Crashing(RenderWorker):
        def __init__(self, timeout: float) -> None:
            super().__init__(timeout, target="test_runner:crash_once")

    monkeypatch.setenv("DOCVLM_TEST_CRASH_MARKER", str(tmp_path / "crashed"))
    monkeypatch.setattr(docvlm.client, "RenderWorker", Crashing)
    with _client(Counting(), render_timeout=60) as client:
        document = client.convert(make_pdf(2))  # type: ignore[operator]
    assert (tmp_path / "crashed").exists()  # it did crash
    assert document.status == "success", document
    assert [p.number for p in document.pages] == [1, 2]


def _scripted() -> ScriptedEngine:
    return ScriptedEngine(lambda request: LINE, resolution=448)


def test_convert_equals_the_first_of_convert_many_on_a_corpus_pdf() -> None:
    source = _corpus(FOUR)
    engine = _scripted()
    with DocVLM(Settings(dpi=36), engine_factory=lambda c, s: engine, checkpoint="x") as client:
        alone = client.convert(source)
        streamed = next(client.convert_many([source]))
    assert alone == streamed
    assert [p.number for p in alone.pages] == list(range(1, _poppler_pages(source) + 1))
    assert alone.status == "success" and alone.sha256 is not None


def test_convert_keeps_the_selection_order() -> None:
    source = _corpus(FOUR)
    engine = _scripted()
    with DocVLM(Settings(dpi=36), engine_factory=lambda c, s: engine, checkpoint="x") as client:
        document = client.convert(source, pages="4,2")
    assert [p.number for p in document.pages] == [4, 2]


class Cancelled(Exception):
    pass


def test_convert_stops_when_its_cancel_callback_raises(make_pdf: object) -> None:
    stop = threading.Event()
    engine = Counting()
    inner = engine.generate

    def generate(requests: Sequence[Request]) -> list[Generation]:
        stop.set()  # cancelled while the first engine call runs
        return inner(requests)

    engine.generate = generate  # type: ignore[method-assign]

    def cancel() -> None:
        if stop.is_set():
            raise Cancelled("given up")

    with _client(engine, batch_size=1) as client, pytest.raises(Cancelled):
        client.convert(make_pdf(6), cancel=cancel)  # type: ignore[operator]
    assert len(engine.calls) == 1  # no engine call after the cancellation


def test_convert_reads_a_stream_that_cannot_seek(make_pdf: object) -> None:
    """A pipe is hashed and rendered from one read of its bytes (it cannot be read twice)."""
    import hashlib
    import os

    data = make_pdf(2).read_bytes()  # type: ignore[operator]
    readable, writable = os.pipe()

    def feed() -> None:
        with open(writable, "wb") as sink:
            sink.write(data)

    feeder = threading.Thread(target=feed)
    feeder.start()
    engine = Counting(lambda call, size: None)
    with open(readable, "rb") as stream, _client(engine) as client:
        assert not stream.seekable()
        document = client.convert(stream)
    feeder.join()
    assert document.status == "success", document
    assert document.sha256 == hashlib.sha256(data).hexdigest()
    assert [p.number for p in document.pages] == [1, 2]
