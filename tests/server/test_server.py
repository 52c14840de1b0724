"""The HTTP service and the viewer's API, through httpx against the ASGI app."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")

import httpx
from fastapi import FastAPI
from PIL import Image, ImageDraw

from docvlm import Document, DocVLM, Settings, json_schema
from docvlm.archive.output import Output
from docvlm.engines import Engine, Request
from docvlm.server import FileArchive, OutputError, service_app, viewer_app
from docvlm.testing import ScriptedEngine

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample.pdf"
T = TypeVar("T")
# Light settings: no render worker process per client (the worker has its own tests).
SETTINGS = Settings(device="cpu", render_timeout=None)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://docvlm")


def png(color: tuple[int, int, int], size: tuple[int, int] = (120, 90)) -> bytes:
    """A page of one colour with a mark of ink in its corner (a page without ink is never
    sent to the model), leaving the middle, where scripted engines look, the colour."""
    image = Image.new("RGB", size, color)
    ink = "black" if sum(color) > 384 else "white"
    ImageDraw.Draw(image).rectangle((4, 4, size[0] // 4, size[1] // 5), fill=ink)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def scripted(respond: Callable[[Request], str], **options: Any) -> tuple[FastAPI, list[Engine]]:
    """A service over a ScriptedEngine; the list receives the engine once it is built."""
    built: list[Engine] = []

    def factory(checkpoint: str, settings: Settings) -> Engine:
        engine = ScriptedEngine(respond, checkpoint=checkpoint)
        built.append(engine)
        return engine

    app = service_app(SETTINGS, checkpoint="scripted", engine_factory=factory, **options)
    return app, built


def test_convert_answers_what_the_library_reads(tiny_checkpoint: Path) -> None:
    """The served Document is the one DocVLM.convert makes in-process (the real model)."""
    app = service_app(SETTINGS, checkpoint=str(tiny_checkpoint))
    data = SAMPLE.read_bytes()
    form = {"tasks": ["text", "layout"], "dpi": "40", "max_new_tokens": "6", "pages": "1"}

    async def go() -> httpx.Response:
        async with client(app) as http:
            return await http.post(
                "/v1/convert", files={"file": ("sample.pdf", data, "application/pdf")}, data=form
            )

    response = run(go())
    assert response.status_code == 200, response.text
    served = response.json()
    jsonschema.validate(served, json_schema("document"))
    upload = io.BytesIO(data)
    upload.name = "sample.pdf"
    with DocVLM(SETTINGS, checkpoint=str(tiny_checkpoint)) as direct:
        expected = direct.convert(
            upload, tasks=["text", "layout"], dpi=40, max_new_tokens=6, pages="1"
        )
    assert served["sha256"] == hashlib.sha256(data).hexdigest()  # the upload's, filled in
    assert served == expected.model_copy(update={"sha256": served["sha256"]}).model_dump(
        mode="json"
    )
    assert [r["task"] for r in served["pages"][0]["results"]] == ["text", "layout"]
    assert response.headers["content-location"] == "/v1/documents/0"


def test_bad_files_get_a_4xx_with_the_cause(corpus: Path) -> None:
    app, _ = scripted(lambda request: "unused")
    cases = {
        corpus / "pdfs/not_pdf/qpdf_not-even-a-pdf.pdf": "not a PDF",
        corpus / "pdfs/corrupt/qpdf_fuzz70245_zero_byte.pdf": "empty",
    }

    async def go() -> list[httpx.Response]:
        async with client(app) as http:
            answers = [
                await http.post("/v1/convert", files={"file": (path.name, path.read_bytes())})
                for path in cases
            ]
            answers.append(await http.post("/v1/convert", data={"tasks": "text"}))
            answers.append(
                await http.post(
                    "/v1/convert", files={"file": ("a.png", png((0, 0, 0)))}, data={"tasks": "x"}
                )
            )
            answers.append(
                await http.post(
                    "/v1/convert", files={"file": ("a.png", png((0, 0, 0)))}, data={"dpi": "9"}
                )
            )
            return answers

    *bad_files, no_file, bad_task, bad_dpi = run(go())
    for (path, cause), response in zip(cases.items(), bad_files, strict=True):
        assert response.status_code == 422
        body = response.json()
        assert path.name in body["detail"] and cause in body["detail"], body["detail"]
        assert body["document"]["status"] == "failure"
    assert no_file.status_code == 422 and "`file`" in no_file.json()["detail"]
    assert bad_task.status_code == 422 and "unknown task 'x'" in bad_task.json()["detail"]
    assert bad_dpi.status_code == 422 and "dpi must be between" in bad_dpi.json()["detail"]


def test_oversize_uploads_get_413_declared_or_streamed() -> None:
    app, _ = scripted(lambda request: "ok", max_upload_bytes=4000)
    small = png((10, 20, 30), (20, 20))
    big = bytes(5000)
    boundary = "docvlmboundary"

    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read until over
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '.encode()
        yield b'filename="big.pdf"\r\n\r\n'
        for _ in range(1000):
            sent.append(2000)
            yield bytes(2000)
        yield f"\r\n--{boundary}--\r\n".encode()

    async def go() -> list[httpx.Response]:
        async with client(app) as http:
            declared = await http.post("/v1/convert", files={"file": ("big.pdf", big)})
            streamed = await http.post(
                "/v1/convert",
                content=chunks(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            fits = await http.post("/v1/convert", files={"file": ("small.png", small)})
            return [declared, streamed, fits]

    declared, streamed, fits = run(go())
    assert "content-length" not in streamed.request.headers
    assert sum(sent) < 100_000  # the server stopped reading soon after the limit
    for response in (declared, streamed):
        assert response.status_code == 413
        assert "over the limit of 4,000 bytes" in response.json()["detail"]
    assert fits.status_code == 200, fits.text


def test_a_full_queue_answers_429_with_retry_after() -> None:
    release = threading.Event()
    app, _ = scripted(lambda request: "late" if release.wait(30) else "", workers=1, queue_limit=1)
    image = png((200, 0, 0))

    async def post(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post(
            "/v1/convert", files={"file": ("a.png", image)}, data={"tasks": "caption"}
        )

    async def go() -> tuple[list[httpx.Response], httpx.Response, httpx.Response]:
        async with client(app) as http:
            held = [asyncio.create_task(post(http)) for _ in range(2)]  # one runs, one waits
            for _ in range(500):
                if (await http.get("/healthz")).json()["admitted"] == 2:
                    break
                await asyncio.sleep(0.01)
            refused = await post(http)
            release.set()
            done = list(await asyncio.gather(*held))
            later = await post(http)
            return done, refused, later

    done, refused, later = run(go())
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "queue is full" in refused.json()["detail"]
    assert [r.status_code for r in done] == [200, 200]
    assert later.status_code == 200
    assert later.json()["pages"][0]["results"][0]["text"] == "late"


def test_concurrent_requests_share_engine_calls() -> None:
    """N requests at once are answered in fewer engine calls than N, each with its own
    answer: the first engine call holds the stream until every request has queued its
    crop, so the others all meet in the next call."""
    n = 6
    holder: dict[str, Any] = {}

    def respond(request: Request) -> str:
        if holder.pop("armed", False):
            shared = holder["shared"]
            deadline = time.monotonic() + 20
            while shared.received - holder["received"] < n and time.monotonic() < deadline:
                time.sleep(0.005)
        red, green, blue = request.image.getpixel((request.image.width // 2,) * 2)
        return f"rgb {red} {green} {blue}"

    app, built = scripted(respond, workers=n, queue_limit=0)
    colors = [(i * 40, 100, 200 - i * 30) for i in range(n)]

    async def go() -> list[httpx.Response]:
        async with client(app) as http:
            await http.post(  # load the engine first, so all N meet the same stream
                "/v1/convert", files={"file": ("w.png", png((1, 2, 3)))}, data={"tasks": "caption"}
            )
            holder["shared"] = app.state.converter.engines.loaded["scripted"]
            holder["before"] = holder["shared"].calls
            holder["received"] = holder["shared"].received
            holder["armed"] = True
            return list(
                await asyncio.gather(
                    *(
                        http.post(
                            "/v1/convert",
                            files={"file": (f"{i}.png", png(color))},
                            data={"tasks": "caption"},
                        )
                        for i, color in enumerate(colors)
                    )
                )
            )

    answers = run(go())
    shared = holder["shared"]
    engine_calls = shared.calls - holder["before"]
    assert [a.status_code for a in answers] == [200] * n
    for color, answer in zip(colors, answers, strict=True):
        assert answer.json()["pages"][0]["results"][0]["text"] == "rgb {} {} {}".format(*color)
    assert engine_calls < n, engine_calls
    assert engine_calls == 2  # the held call, then all the others together
    assert len(built) == 1  # one engine for every worker


def test_schema_health_and_viewer_are_served() -> None:
    app, _ = scripted(lambda request: "x")

    async def go() -> list[httpx.Response]:
        async with client(app) as http:
            return [
                await http.get(path)
                for path in (
                    "/v1/schema",
                    "/healthz",
                    "/",
                    "/static/app.js",
                    "/v1/info",
                    "/openapi.json",
                    "/docs",
                )
            ]

    schema, health, index, script, info, openapi, docs = run(go())
    form = openapi.json()["paths"]["/v1/convert"]["post"]["requestBody"]["content"]
    assert form["multipart/form-data"]["schema"]["required"] == ["file"]
    assert docs.status_code == 404  # Swagger UI would load from a CDN
    assert schema.json() == json_schema("document")
    assert health.json()["status"] == "ok" and health.json()["mode"] == "serve"
    assert "script-src 'self'" in index.headers["content-security-policy"]
    assert '<script src="/static/app.js"' in index.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert info.json()["mode"] == "serve"


def test_served_documents_are_kept_for_the_viewer() -> None:
    def respond(request: Request) -> str:
        return (
            "<loc0100><loc0100><loc0400><loc0500> Total yield" if request.prompt == "ocr" else "?"
        )

    app, _ = scripted(respond, keep=2)
    data = SAMPLE.read_bytes()

    async def go() -> list[httpx.Response]:
        async with client(app) as http:
            out = []
            for _ in range(3):
                out.append(
                    await http.post(
                        "/v1/convert",
                        files={"file": ("sample.pdf", data)},
                        data={"tasks": ["text", "table"], "dpi": "40"},
                    )
                )
            out.append(await http.get("/v1/documents"))
            out.append(await http.get("/v1/documents/0"))
            out.append(await http.get("/v1/documents/2/pages/2/image"))
            out.append(await http.get("/v1/suspects"))
            return out

    *converted, listing, dropped, image, suspects = run(go())
    assert [r.status_code for r in converted] == [200, 200, 200], converted[0].text
    body = listing.json()
    assert body["total"] == 2 and [d["id"] for d in body["documents"]] == [1, 2]
    assert dropped.status_code == 404
    page = converted[2].json()["pages"][1]
    assert image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == (page["width"], page["height"])
    flagged = suspects.json()
    # "?" is not a table: one parse error per page of each kept document
    assert {(s["document"], s["page"], s["reason"]) for s in flagged} == {
        (d, p, "parse_error") for d in (1, 2) for p in (1, 2)
    }


def test_view_over_a_jsonl_written_by_convert(
    tiny_checkpoint: Path, make_pdf: Callable[..., Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from docvlm.cli import app as cli

    pdf = make_pdf(2)
    bad = tmp_path / "bad.pdf"
    bad.write_text("no pdf here")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            *("convert", str(pdf), str(bad), "-c", str(tiny_checkpoint), "--json"),
            *("-o", str(out), "--max-new-tokens", "4", "--dpi", "40", "-t", "layout"),
        ],
    )
    assert result.exit_code == 1, result.output  # the bad file
    lines = out.read_text().splitlines()
    viewer = viewer_app(out, SETTINGS)

    async def go() -> list[httpx.Response]:
        async with client(viewer) as http:
            listing = await http.get("/v1/documents")
            ids = {d["source"]: d["id"] for d in listing.json()["documents"]}
            good, failed = ids[str(pdf)], ids[str(bad)]
            return [
                listing,
                await http.get(f"/v1/documents/{good}"),
                await http.get(f"/v1/documents/{good}/pages/2/image"),
                await http.get(f"/v1/documents/{failed}/pages/1/image"),
                await http.get("/v1/suspects"),
                await http.post("/v1/convert"),
            ]

    listing, first, image, missing, suspects, convert = run(go())
    sources = [d["source"] for d in listing.json()["documents"]]
    assert sorted(sources) == sorted([str(pdf), str(bad)])
    good, failed = sources.index(str(pdf)), sources.index(str(bad))
    assert first.json() == json.loads(lines[good])
    page = first.json()["pages"][1]
    rendered = Image.open(io.BytesIO(image.content))
    assert rendered.size == (page["width"], page["height"])
    assert missing.status_code == 404
    cut = [  # the tiny model runs out of its 4 tokens: each such result is suspect
        (good, page["number"], index, "length")
        for page in first.json()["pages"]
        for index, r in enumerate(page["results"])
        if r["stop"] == "length"
    ]
    flagged = [(s["document"], s["page"], s["index"], s["reason"]) for s in suspects.json()]
    assert sorted(flagged, key=str) == sorted(
        [(failed, None, None, "document_failure"), *cut], key=str
    )
    failure = next(s for s in suspects.json() if s["reason"] == "document_failure")
    assert "not a PDF" in failure["detail"]
    assert convert.status_code in (404, 405)  # view mode converts nothing


def test_view_finds_moved_sources_under_root_and_names_bad_lines(
    make_pdf: Callable[..., Path], tmp_path: Path
) -> None:
    pdf = make_pdf(1)
    document = Document(source=pdf.name, status="success")
    out = tmp_path / "sub" / "out.jsonl"
    out.parent.mkdir()
    out.write_text(document.model_dump_json() + "\n")
    archive = FileArchive(Output.existing(out), SETTINGS, root=pdf.parent)
    assert archive._locate(pdf.name) == pdf
    broken = tmp_path / "broken.jsonl"
    broken.write_text(document.model_dump_json() + '\n{"source": 1}\n')
    with pytest.raises(OutputError, match=r"broken.jsonl, line 2: not a Document"):
        FileArchive(Output.existing(broken), SETTINGS)


def test_importing_docvlm_and_its_cli_loads_no_web_framework() -> None:
    code = (
        "import sys, json, docvlm, docvlm.cli, docvlm.server;"
        "print(json.dumps([m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("destination", ["out.jsonl", "out.parquet", "parts.parquet/", "folder/"])
def test_view_reads_every_output_form_of_the_sinks(
    destination: str, make_pdf: Callable[..., Path], tmp_path: Path
) -> None:
    """The viewer reads back, through each sink's own files, the Documents written."""
    pytest.importorskip("pyarrow")
    from docvlm.archive.output import open_sink

    def respond(request: Request) -> str:
        if request.prompt == "ocr":
            return "<loc0100><loc0100><loc0300><loc0900> results of the assay"
        return "<table><tr><td>a</td><td>b</td></tr></table>"

    bad = tmp_path / "bad.pdf"
    bad.write_text("not a pdf")
    pdf = make_pdf(2)
    scripted_engine = ScriptedEngine(respond)
    with DocVLM(SETTINGS, checkpoint="s", engine_factory=lambda c, s: scripted_engine) as reader:
        documents = list(reader.convert_many([pdf, bad], tasks=["text", "table"], dpi=40))
    target = tmp_path / destination
    if destination.endswith("/"):
        target.mkdir()
    with open_sink(target) as sink:
        for document in documents:
            sink.write(document)
    archive = FileArchive(Output.existing(target), SETTINGS)
    total, summaries = archive.summaries(0, 10)
    assert total == 2
    read = [archive.document(s.id) for s in summaries]
    by_source = {d.source: d for d in read}
    for written in documents:
        back = by_source[written.source]
        assert back == written  # Parquet too: the page's DPI, warnings, turn and tables
    good = next(s.id for s in summaries if s.source == str(pdf))
    png = archive.page_png(good, 2)
    page = by_source[str(pdf)].pages[1]
    assert Image.open(io.BytesIO(png)).size == (page.width, page.height)
    flagged = {(s.source, s.reason) for s in archive.suspects(None, 100)}
    assert flagged == {(str(bad), "document_failure")}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def serving(args: list[str], port: int) -> subprocess.Popen[str]:
    """``docvlm ARGS`` started in a subprocess, once it answers /healthz on ``port``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "docvlm", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"docvlm {args[0]} did not start: {process.communicate()[0]}")


def test_serve_and_view_commands_listen_on_localhost(tmp_path: Path) -> None:
    port = free_port()
    serve = serving(["serve", "-c", "never-loaded", "--workers", "1"], port)
    try:
        info = httpx.get(f"http://127.0.0.1:{port}/v1/info").json()
    finally:
        serve.terminate()
        log = serve.communicate(timeout=30)[0]
    assert info["mode"] == "serve"
    assert f"Uvicorn running on http://127.0.0.1:{port}" in log
    engine = ScriptedEngine(lambda request: "a caption")
    with DocVLM(SETTINGS, checkpoint="s", engine_factory=lambda c, s: engine) as reader:
        document = reader.convert(SAMPLE, tasks=["caption"], pages="2", dpi=40)
    out = tmp_path / "out.jsonl"  # the source named relative to the folder given as --root
    out.write_text(document.model_copy(update={"source": "sample.pdf"}).model_dump_json() + "\n")
    view = serving(["view", str(out), "--root", str(SAMPLE.parent)], port)
    try:
        listing = httpx.get(f"http://127.0.0.1:{port}/v1/documents").json()
        image = httpx.get(f"http://127.0.0.1:{port}/v1/documents/0/pages/2/image", timeout=60)
    finally:
        view.terminate()
        view.communicate(timeout=30)
    assert listing["documents"][0]["source"] == "sample.pdf"
    page = document.pages[0]
    assert Image.open(io.BytesIO(image.content)).size == (page.width, page.height)


def test_concurrent_pdfs_render_in_process_one_at_a_time() -> None:
    """pdfium is not thread-safe: the service's clients render under one lock, and
    concurrent PDF uploads all read the same."""
    from docvlm.reading.pdf import InProcessPdf
    from docvlm.server.archive import LockedPdf

    app, _ = scripted(lambda request: "a page", workers=4)
    clients = app.state.converter._all
    # each reader checks for cancellation, then takes the pdfium lock
    assert all(isinstance(c._reader()._reader, LockedPdf) for c in clients)
    assert isinstance(LockedPdf(InProcessPdf())._reader, InProcessPdf)
    data = SAMPLE.read_bytes()

    async def go() -> list[httpx.Response]:
        async with client(app) as http:
            return list(
                await asyncio.gather(
                    *(
                        http.post(
                            "/v1/convert",
                            files={"file": ("sample.pdf", data)},
                            data={"tasks": "caption", "dpi": "60"},
                        )
                        for _ in range(4)
                    )
                )
            )

    answers = run(go())
    assert [a.status_code for a in answers] == [200] * 4
    assert all(a.json() == answers[0].json() for a in answers)
    assert [p["width"] for p in answers[0].json()["pages"]] == [510, 510]


def test_scores_engrave_in_a_worker_thread_after_another_toolkit(corpus: Path) -> None:
    """verovio's default resource path is per thread: a toolkit made first in another
    thread (as synthetic data does) must not leave the server's thread without fonts."""
    verovio = pytest.importorskip("verovio")
    from docvlm.server import drawings
    from parsers import parse_kern

    kern = (corpus / "music/kern/polish_holland_erste-menuet.krn").read_text(encoding="utf-8")
    score = parse_kern(kern)
    verovio.toolkit().loadData(kern)  # another toolkit, made in this thread first
    drawings._toolkit = None
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(drawings.music_svg(score)))
    worker.start()
    worker.join(60)
    (svg,) = results
    heads = sum(len(note.pitches) for note in score.to_music21().recurse().notes)
    assert svg.startswith("<svg") and svg.count('class="note"') == heads
