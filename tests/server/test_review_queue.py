"""The viewer's review queue (``GET /v1/review``) against ``docvlm review OUT --json``:
the same items in the same order for the same options; after a save (the viewer's, or
another process's ``docvlm correct``), a corrected result leaves the queue and the suspect
list, and a page marked reviewed leaves the queue, without restarting the viewer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
import httpx
from editable import SMILES, converted_output
from fastapi import FastAPI
from typer.testing import CliRunner

from docvlm import Document, Settings
from docvlm.archive.edits import Correction
from docvlm.archive.output import Output
from docvlm.cli import app as cli
from docvlm.server import viewer_app

SETTINGS = Settings(device="cpu", render_timeout=None)


def call(app: FastAPI, *calls: tuple[str, str, dict[str, Any]]) -> list[Any]:
    """Each request's JSON body (asserting a 2xx answer)."""

    async def go() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://docvlm") as http:
            answers = [await http.request(method, url, **kw) for method, url, kw in calls]
        for answer in answers:
            assert answer.is_success, answer.text
        return [answer.json() for answer in answers]

    return asyncio.run(go())


def command(out: Path, *options: str) -> list[dict[str, Any]]:
    """What ``docvlm review OUT --json`` prints."""
    done = CliRunner().invoke(cli, ["review", str(out), "--json", *options])
    assert done.exit_code == 0, done.output
    listed: list[dict[str, Any]] = json.loads(done.stdout)
    return listed


def places(items: list[dict[str, Any]]) -> list[tuple[str, int | None, int | None]]:
    return [(Path(i["source"]).name, i["page"], i["result"]) for i in items]


@pytest.fixture(scope="module")
def converted(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two scans of the page, converted into a folder (copied by each test that edits)."""
    return converted_output(corpus, tmp_path_factory.mktemp("queue"))


OPTIONS = {
    (): {},
    ("--below", "0.7"): {"below": 0.7},
    ("--task", "table"): {"task": "table"},
    ("--limit", "3"): {"limit": 3},
    ("--limit", "0"): {"limit": 0},
}


def test_the_queue_is_the_commands_for_every_option(converted: Path) -> None:
    app = viewer_app(converted, SETTINGS)
    answers = call(app, *[("GET", "/v1/review", {"params": p}) for p in OPTIONS.values()])
    for given, answer in zip(OPTIONS, answers, strict=True):
        assert answer["items"] == command(converted, *given), given
    everything = answers[0]
    # weakest first: the molecules cut at the token limit, then by confidence (0.6 < 0.8)
    assert [i["task"] for i in everything["items"]] == [
        "molecule", "molecule", "text", "text", "table", "table", "music", "music",
    ]  # fmt: skip
    assert [i["reasons"] for i in everything["items"][:3]] == [["length"], ["length"], []]
    assert [i["task"] for i in answers[1]["items"]] == ["molecule", "molecule", "text", "text"]
    assert all("low_confidence" in i["reasons"] for i in answers[1]["items"])
    # each item's document, as the viewer numbers them, is the one with that source
    documents = [d for d in Output.existing(converted).records()]
    for item, number in zip(everything["items"], everything["documents"], strict=True):
        (opened,) = call(app, ("GET", f"/v1/documents/{number}", {}))
        assert Document.model_validate(opened).source == item["source"]
        assert opened["sha256"] in {d.sha256 for d in documents}


def test_an_unknown_task_is_refused(converted: Path) -> None:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=viewer_app(converted, SETTINGS))
        async with httpx.AsyncClient(transport=transport, base_url="http://docvlm") as http:
            return await http.get("/v1/review", params={"task": "poetry"})

    answer = asyncio.run(go())
    assert answer.status_code == 422 and "unknown task 'poetry'" in answer.json()["detail"]


@pytest.mark.parametrize("form", ["out/", "out.jsonl"])
def test_a_save_updates_the_queue_and_the_suspects_at_once(
    corpus: Path, tmp_path: Path, form: str
) -> None:
    out = converted_output(corpus, tmp_path, out=form)
    app = viewer_app(out, SETTINGS, edit=True)
    queue, suspects, listed = call(
        app, ("GET", "/v1/review", {}), ("GET", "/v1/suspects", {}), ("GET", "/v1/documents", {})
    )
    first, number = queue["items"][0], queue["documents"][0]
    other_number = 1 - number  # a JSONL holds the records in the order they were read
    assert (first["task"], first["reasons"]) == ("molecule", ["length"])
    assert sorted((s["document"], s["reason"]) for s in suspects) == [(0, "length"), (1, "length")]
    assert [d["suspects"] for d in listed["documents"]] == [1, 1]
    edit = {"sha256": first["sha256"], "page": 1}
    call(
        app,
        ("POST", "/v1/corrections", {"json": {**edit, "result": first["result"], "value": SMILES}}),
    )
    queue, suspects, listed = call(
        app, ("GET", "/v1/review", {}), ("GET", "/v1/suspects", {}), ("GET", "/v1/documents", {})
    )
    assert [(s["document"], s["reason"]) for s in suspects] == [(other_number, "length")]
    assert {d["id"]: d["suspects"] for d in listed["documents"]} == {number: 0, other_number: 1}
    assert (first["sha256"], 1, first["result"]) not in {
        (i["sha256"], i["page"], i["result"]) for i in queue["items"]
    }
    assert queue["items"] == command(out)
    call(app, ("POST", "/v1/corrections", {"json": {**edit, "reviewed": True}}))
    (queue,) = call(app, ("GET", "/v1/review", {}))
    assert {i["sha256"] for i in queue["items"]} == {s for s in _shas(out)} - {first["sha256"]}
    assert queue["items"] == command(out)
    assert queue["documents"] == [other_number] * len(queue["items"])
    # another person, through docvlm correct: the page of document 1 leaves the queue too
    other = queue["items"][0]["sha256"]
    Output.existing(out).corrections().apply(
        Correction(sha256=other, page=1, reviewed=True), by="bob"
    )
    (queue,) = call(app, ("GET", "/v1/review", {}))
    assert queue == {"items": [], "documents": []} and command(out) == []


def test_without_edit_the_queue_leaves_out_what_was_corrected_and_reviewed(
    corpus: Path, tmp_path: Path
) -> None:
    out = converted_output(corpus, tmp_path, out="out.jsonl")
    first, second = (str(out.parent / f"scans/page-{n}.png") for n in (1, 2))
    sha = {d.source: str(d.sha256) for d in Output.existing(out).records()}
    store = Output.existing(out).corrections()
    store.apply(Correction(sha256=sha[first], page=1, result=0, value=SMILES))  # the molecule
    store.apply(Correction(sha256=sha[second], page=1, reviewed=True))
    (queue, suspects) = call(
        viewer_app(out, SETTINGS), ("GET", "/v1/review", {}), ("GET", "/v1/suspects", {})
    )
    assert queue["items"] == command(out)
    assert places(queue["items"]) == [
        ("page-1.png", 1, 2),
        ("page-1.png", 1, 1),
        ("page-1.png", 1, 3),
    ]
    assert [s["source"] for s in suspects] == [second]  # a review mark is not a correction


def test_the_service_has_the_queue_of_its_conversions(converted: Path) -> None:
    from docvlm.archive.review import review
    from docvlm.server.app import create_app
    from docvlm.server.archive import UploadArchive

    archive = UploadArchive(SETTINGS)
    documents = list(Output.existing(converted).records())
    numbers = [archive.add(document, b"", None) for document in documents]
    (queue,) = call(create_app(archive), ("GET", "/v1/review", {"params": {"limit": 0}}))
    assert queue["items"] == [item.model_dump(mode="json") for item in review(documents)]
    by_source = {d.source: n for d, n in zip(documents, numbers, strict=True)}
    assert queue["documents"] == [by_source[item["source"]] for item in queue["items"]]


def _shas(out: Path) -> list[str]:
    return [str(d.sha256) for d in Output.existing(out).records()]


@pytest.mark.parametrize("part", [{"line": 0}, {"cell": [1, 0]}], ids=["line", "cell"])
def test_a_result_corrected_in_parts_stays_until_its_page_is_reviewed(
    corpus: Path, tmp_path: Path, part: dict[str, Any]
) -> None:
    """One line or cell checked vouches for no other: the result stays in the queue
    (``partly_corrected``) and among the suspects, until its page is marked reviewed."""
    out = converted_output(corpus, tmp_path)
    app = viewer_app(out, SETTINGS, edit=True)
    low = ("GET", "/v1/suspects", {"params": {"min_confidence": 1.0}})
    queue, suspects = call(app, ("GET", "/v1/review", {}), low)
    item = next(i for i in queue["items"] if i["task"] == ("text" if "line" in part else "table"))
    where = (item["source"], 1, item["result"])
    assert where in {(s["source"], s["page"], s["index"]) for s in suspects}
    edit = {"sha256": item["sha256"], "page": 1}
    call(app, ("POST", "/v1/corrections", {"json": {**edit, "result": item["result"], **part,
                                                    "text": "checked"}}))  # fmt: skip
    queue, suspects = call(app, ("GET", "/v1/review", {}), low)
    (kept,) = [i for i in queue["items"] if (i["source"], i["page"], i["result"]) == where]
    assert kept == {**item, "reasons": [*item["reasons"], "partly_corrected"]}
    assert queue["items"] == command(out)
    assert where in {(s["source"], s["page"], s["index"]) for s in suspects}
    call(app, ("POST", "/v1/corrections", {"json": {**edit, "reviewed": True}}))
    queue, suspects = call(app, ("GET", "/v1/review", {}), low)
    assert item["sha256"] not in {i["sha256"] for i in queue["items"]}
    assert queue["items"] == command(out)
    left = {(s["source"], s["page"], s["index"]) for s in suspects}
    assert where not in left  # vouched for: read whole
    # the page's results no one corrected are still suspects: a review mark is no correction
    assert any(s[0] == item["source"] and s[2] != item["result"] for s in left)
