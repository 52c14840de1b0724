"""What the service answers for damage outside its control: a record whose ``source`` no
file system accepts (404, like every page that cannot be drawn), and a checkpoint whose
weights are garbage (503 naming the file, as docs/serve.md promises); a request cut
off on shutdown (503, not 500)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")

import httpx
from conftest import scribbled
from fastapi import FastAPI
from PIL import Image

from docvlm import Document, Settings
from docvlm.server import service_app, viewer_app

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings(device="cpu", render_timeout=None)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://docvlm")


@pytest.mark.parametrize(
    "source", ["scan\x00.png", "x" * 100_000, "d/" * 50_000 + "scan.png", "/" + "y" * 5000]
)
def test_a_source_no_file_system_accepts_is_the_documented_404(
    tmp_path: Path, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    Image.new("RGB", (40, 30), "blue").save(tmp_path / "scan.png")
    page = {"number": 1, "width": 40, "height": 30, "status": "ok", "results": []}
    lines = [
        json.dumps({"source": name, "status": "success", "pages": [page]})
        for name in ("scan.png", source)
    ]
    assert Document.model_validate_json(lines[1]).source == source  # a real Document
    (tmp_path / "out.jsonl").write_text("\n".join(lines) + "\n")
    app = viewer_app(tmp_path / "out.jsonl", SETTINGS)

    async def go() -> list[httpx.Response]:
        async with client(app) as http:
            return [await http.get(f"/v1/documents/{n}/pages/1/image") for n in (0, 1)]

    with caplog.at_level(logging.INFO):
        good, bad = asyncio.run(go())
    assert good.status_code == 200
    assert Image.open(io.BytesIO(good.content)).getpixel((5, 5)) == (0, 0, 255)
    assert (bad.status_code, bad.json()) == (404, {"detail": "no such page image"})
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_garbage_checkpoint_answers_503_naming_the_file(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, checkpoint)
    (checkpoint / "model.safetensors").write_bytes(b"garbage, not tensors" * 50)
    app = service_app(SETTINGS, checkpoint=str(checkpoint))
    upload = io.BytesIO()
    scribbled((120, 90)).save(upload, "PNG")

    async def go() -> httpx.Response:
        async with client(app) as http:
            files = {"file": ("page.png", upload.getvalue(), "image/png")}
            return await http.post("/v1/convert", files=files, data={"tasks": ["text"]})

    response = asyncio.run(go())
    assert response.status_code == 503, response.text
    assert response.json() == {
        "detail": f"{checkpoint / 'model.safetensors'}: not a readable safetensors file "
        "(Error while deserializing header: header too large)"
    }


SLOW_SERVER = """
import sys, time
from docvlm import Settings
from docvlm.server import service_app
from docvlm.server.run import GRACEFUL_SECONDS, run
from docvlm.testing import ScriptedEngine

def respond(request):
    print("engine called", flush=True)
    time.sleep(GRACEFUL_SECONDS + 3)  # one engine call outlasts the grace period
    return "a page"

app = service_app(
    Settings(device="cpu", render_timeout=None), checkpoint="s", workers=1,
    engine_factory=lambda c, s: ScriptedEngine(respond, record=False),
)
run(app, port=int(sys.argv[1]))
"""


def test_sigterm_past_the_grace_period_still_answers_503(tmp_path: Path) -> None:
    """The conversion is inside an engine call longer than the grace period when SIGTERM
    comes: uvicorn cancels the request, which answers the documented 503 (it was 500)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "server.log"
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-c", SLOW_SERVER, str(port)],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    upload = io.BytesIO()
    scribbled((120, 90)).save(upload, "PNG")
    answers: list[httpx.Response] = []

    def convert() -> None:
        files = {"file": ("page.png", upload.getvalue(), "image/png")}
        answers.append(httpx.post(f"{url}/v1/convert", files=files, timeout=60))

    worker = threading.Thread(target=convert)
    try:
        assert _until(lambda: _answers(f"{url}/healthz"), 60), "the server did not start"
        worker.start()
        assert _until(lambda: "engine called" in log.read_text(), 30), log.read_text()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        worker.join(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    text = log.read_text()
    assert "timeout graceful shutdown exceeded" in text  # the request was cancelled
    assert [(a.status_code, a.text) for a in answers] == [
        (503, '{"detail":"the conversion was cancelled (the server is stopping)"}')
    ], text[-3000:]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False
