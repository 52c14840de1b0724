"""``docvlm serve`` and ``docvlm view`` under hostile use: a page range far past the
document, hostile model output, uploads past a full queue (a soak with RSS measured), a
client that leaves, a request past its time budget, SIGTERM during a long conversion, a
record naming files outside the output, and the password form field."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")

import httpx
from conftest import scribbled
from PIL import Image

from docvlm import Document, Settings
from docvlm.engines import Engine, Request
from docvlm.server import service_app, viewer_app
from docvlm.testing import ScriptedEngine
from parsers.base import MAX_INPUT_CHARS

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample.pdf"
SETTINGS = Settings(device="cpu", render_timeout=None)
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://docvlm")


def scripted(respond: Callable[[Request], str], **options: Any) -> tuple[Any, list[Engine]]:
    built: list[Engine] = []

    def factory(checkpoint: str, settings: Settings) -> Engine:
        built.append(ScriptedEngine(respond, checkpoint=checkpoint))
        return built[-1]

    return service_app(SETTINGS, checkpoint="s", engine_factory=factory, **options), built


def png_bytes(size: tuple[int, int] = (120, 90)) -> bytes:
    """A page with ink (a blank one is never sent to the model)."""
    buffer = io.BytesIO()
    scribbled(size).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_huge_page_range_is_a_422_naming_the_upload_and_its_pages() -> None:
    app, built = scripted(lambda request: "text")

    async def go() -> list[httpx.Response]:
        async with client(app) as http:
            file = {"file": ("sample.pdf", SAMPLE.read_bytes())}
            return [
                await http.post("/v1/convert", files=file, data={"pages": selection})
                for selection in ("1-99999999999", "1-40000000")
            ]

    for response, page in zip(asyncio.run(go()), ("99999999999", "40000000"), strict=True):
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == (
            f"sample.pdf: page {page} is out of range (the document has 2 page(s))"
        )
    assert not built or not built[0].requests  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("task", "output", "reason"),
    [
        ("molecule", "C" * (MAX_INPUT_CHARS + 1), "more than the limit of 400,000"),
        ("caption", "bad \udcff", "lone surrogate(s), replaced with U+FFFD"),
    ],
)
def test_hostile_model_output_is_a_200_with_a_parse_error(
    task: str, output: str, reason: str
) -> None:
    app, _ = scripted(lambda request: output)

    async def go() -> httpx.Response:
        async with client(app) as http:
            return await http.post(
                "/v1/convert", files={"file": ("a.png", png_bytes())}, data={"tasks": task}
            )

    response = asyncio.run(go())
    assert response.status_code == 200, response.text
    (result,) = response.json()["pages"][0]["results"]
    assert result["status"] == "parse_error" and reason in result["error"]


def test_an_encrypted_upload_names_the_password_form_field(corpus: Path) -> None:
    encrypted = (corpus / "pdfs/encrypted/pypdf_r2-user-password.pdf").read_bytes()
    app, _ = scripted(lambda request: "text")
    form = (ROOT / "docvlm/viewer/index.html").read_text(encoding="utf-8")
    assert '<input type="password" name="password"' in form  # the viewer's upload form

    async def go() -> list[httpx.Response]:
        async with client(app) as http:
            return [
                await http.post("/v1/convert", files={"file": ("x.pdf", encrypted)}, data=fields)
                for fields in ({}, {"password": "asdfzxcv", "tasks": "caption", "dpi": "40"})
            ]

    refused, opened = asyncio.run(go())
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "x.pdf: it is encrypted: give its password (the `password` form field)"
    )
    assert opened.status_code == 200, opened.text


def test_the_viewer_draws_only_files_under_its_folders(tmp_path: Path) -> None:
    """Records naming a file outside the output's folder (absolute, ``../``, through a
    link), a missing file and a non-image all get the very same 404."""
    secret = tmp_path / "secret" / "secret.png"
    secret.parent.mkdir()
    Image.new("RGB", (40, 30), "red").save(secret)
    out = tmp_path / "out"
    out.mkdir()
    Image.new("RGB", (40, 30), "blue").save(out / "scan.png")
    (out / "notes.png").write_text("not an image at all")
    (out / "link.png").symlink_to(secret)
    sources = [
        "scan.png",
        str(secret),
        "../secret/secret.png",
        "../../../../../../../../etc/passwd",
        "/etc/passwd",
        "link.png",
        "gone.png",
        "notes.png",
        str(out / ".." / "secret" / "secret.png"),
    ]
    page = {"number": 1, "width": 40, "height": 30, "status": "ok", "results": []}
    lines = [
        json.dumps({"source": source, "status": "success", "pages": [page]}) for source in sources
    ]
    (out / "out.jsonl").write_text("\n".join(lines) + "\n")
    Document.model_validate_json(lines[0])  # the records are real Documents
    app = viewer_app(out / "out.jsonl", SETTINGS)

    async def go() -> list[httpx.Response]:
        async with client(app) as http:
            return [
                await http.get(f"/v1/documents/{number}/pages/1/image")
                for number in range(len(sources))
            ]

    good, *refused = asyncio.run(go())
    assert good.status_code == 200
    assert Image.open(io.BytesIO(good.content)).getpixel((5, 5)) == (0, 0, 255)
    assert [(r.status_code, r.content) for r in refused] == [
        (404, b'{"detail":"no such page image"}')
    ] * len(refused)


def inked_pdf(path: Path, pages: int) -> Path:
    """A PDF of ``pages`` small pages, each written on (a blank page would never reach the
    model): quick to render, long to convert."""
    import pypdfium2 as pdfium

    one = io.BytesIO()
    scribbled((200, 200)).save(one, "PDF")
    source = pdfium.PdfDocument(one.getvalue())
    document = pdfium.PdfDocument.new()
    document.import_pages(source, [0] * pages)
    document.save(str(path))
    document.close()
    source.close()
    return path


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def slow(seconds: float, calls: list[float]) -> Callable[[Request], str]:
    def respond(request: Request) -> str:
        calls.append(time.monotonic())
        time.sleep(seconds)
        return "a page"

    return respond


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def uvicorn_thread() -> Iterator[Callable[[Any], str]]:
    """Serve an app with a real uvicorn (real sockets, real disconnects) in a thread."""
    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Any) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        assert wait_until(lambda: server.started, 20)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(20)


def test_a_client_that_disconnects_cancels_its_conversion(
    tmp_path: Path, uvicorn_thread: Callable[[Any], str]
) -> None:
    calls: list[float] = []
    app, _ = scripted(slow(0.05, calls), workers=1)
    converter = app.state.converter
    url = uvicorn_thread(app)
    pdf = inked_pdf(tmp_path / "long.pdf", 400).read_bytes()  # 400 x 0.05 s = 20 s of work
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
        httpx.post(
            f"{url}/v1/convert",
            files={"file": ("long.pdf", pdf)},
            data={"tasks": "caption", "dpi": "36"},
            timeout=httpx.Timeout(10, read=1.5),
        )
    gave_up = time.monotonic()
    assert wait_until(lambda: converter.admitted == 0, 5), "the conversion went on"
    stopped = len(calls)
    time.sleep(0.5)
    assert len(calls) == stopped < 100  # no engine request after the cancellation
    assert time.monotonic() - gave_up < 5


def test_a_request_past_its_time_budget_is_a_504_and_stops(tmp_path: Path) -> None:
    calls: list[float] = []
    app, _ = scripted(slow(0.05, calls), workers=1, request_timeout=1.0)
    pdf = inked_pdf(tmp_path / "long.pdf", 400).read_bytes()

    async def go() -> httpx.Response:
        async with client(app) as http:
            return await http.post(
                "/v1/convert",
                files={"file": ("long.pdf", pdf)},
                data={"tasks": "caption", "dpi": "36"},
            )

    started = time.monotonic()
    response = asyncio.run(go())
    assert response.status_code == 504
    assert "budget of 1 s (--request-timeout)" in response.json()["detail"]
    assert time.monotonic() - started < 3
    assert wait_until(lambda: app.state.converter.admitted == 0, 5)
    stopped = len(calls)
    time.sleep(0.3)
    assert len(calls) == stopped < 60


SOAK_SERVER = """
import sys, time
from docvlm import Settings
from docvlm.server import service_app
from docvlm.server.run import run
from docvlm.testing import ScriptedEngine

def respond(request):
    time.sleep(0.3)
    return "a page"

app = service_app(
    Settings(device="cpu", render_timeout=None), checkpoint="s", workers=1, queue_limit=1,
    engine_factory=lambda c, s: ScriptedEngine(respond, record=False),
    max_upload_bytes=32 << 20,
)
run(app, port=int(sys.argv[1]))
"""
#: Uploads in the soak, and the size of each (a PNG padded to this size).
SOAK_UPLOADS, SOAK_MB = 30, 16
#: What the soak may add to the server's peak RSS: four uploads' worth. Reading each body
#: before the queue refused it (the issue) costs up to 30 x 16 MB = 480 MB.
SOAK_RSS_BOUND_MB = 4 * SOAK_MB


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc for RSS")
def test_a_soak_of_large_uploads_past_a_full_queue_keeps_rss_bounded() -> None:
    """30 concurrent 16 MB uploads against 1 worker and a queue of 1: the ones past the
    queue are refused at once (429) without their bodies being read, the admitted ones
    are streamed to disk, and the server's peak RSS stays within the stated bound."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SOAK_SERVER, str(port)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _answers(f"{url}/healthz"), 60), "the server did not start"
        warm = httpx.post(f"{url}/v1/convert", files={"file": ("w.png", png_bytes())})
        assert warm.status_code == 200, warm.text
        before = _peak_rss_mb(server.pid)
        body = png_bytes() + bytes(SOAK_MB << 20)  # PIL reads the PNG, ignores the rest
        statuses: list[int] = []

        def upload() -> None:
            try:
                response = httpx.post(
                    f"{url}/v1/convert",
                    files={"file": ("big.png", body)},
                    data={"tasks": "caption"},
                    timeout=60,
                )
                statuses.append(response.status_code)
            except httpx.TransportError:  # refused while still sending: reset mid-body
                statuses.append(0)

        threads = [threading.Thread(target=upload) for _ in range(SOAK_UPLOADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        grown = _peak_rss_mb(server.pid) - before
        health = httpx.get(f"{url}/healthz").json()
    finally:
        server.terminate()
        server.wait(30)
    assert statuses.count(200) >= 2 and statuses.count(200) + statuses.count(429) >= 20, statuses
    assert set(statuses) <= {200, 429, 0}, statuses
    assert health["admitted"] == 0
    assert grown < SOAK_RSS_BOUND_MB, f"peak RSS grew {grown:.0f} MB"
    print(f"soak: {statuses.count(200)} x 200, {statuses.count(429)} x 429, RSS +{grown:.1f} MB")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_sigterm_during_a_long_conversion_exits_within_seconds(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """A real ``docvlm serve`` (the tiny model) converting 2,000 pages: SIGTERM stops it
    (no new work, the conversion cancelled, the process gone) well within 10 s."""
    port = free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "docvlm", "serve", "-c", str(tiny_checkpoint)),
            *("--device", "cpu", "--workers", "1", "--port", str(port)),
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    pdf = inked_pdf(tmp_path / "long.pdf", 2000).read_bytes()
    answers: list[int] = []

    def convert() -> None:
        try:
            response = httpx.post(
                f"{url}/v1/convert",
                files={"file": ("long.pdf", pdf)},
                data={"tasks": "caption", "dpi": "36", "max_new_tokens": "8"},
                timeout=120,
            )
            answers.append(response.status_code)
        except httpx.TransportError:
            answers.append(0)

    try:
        assert wait_until(lambda: _answers(f"{url}/healthz"), 60), "serve did not start"
        worker = threading.Thread(target=convert)
        worker.start()
        assert wait_until(lambda: httpx.get(f"{url}/healthz").json()["engines"] != [], 60), (
            "the model never loaded"
        )
        time.sleep(1.0)  # converting now
        assert httpx.get(f"{url}/healthz").json()["admitted"] == 1
        sent = time.monotonic()
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        took = time.monotonic() - sent
        worker.join(30)
    finally:
        if server.poll() is None:
            server.kill()
        log = server.communicate()[0]
    assert took < 10, f"exited {took:.1f} s after SIGTERM"
    assert code in (0, -signal.SIGTERM), log[-2000:]  # uvicorn re-raises the signal
    assert "Application shutdown complete" in log
    print(f"exited {took:.1f} s after SIGTERM")
    assert answers and answers[0] in (0, 503), answers
