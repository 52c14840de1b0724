"""The editors' API (docvlm.server.corrections), through httpx against the ASGI app:
saves checked as model output is, 403 when editing is off, 401 without the token, 409
with the current version when two people save one place, and bounded previews."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
import httpx
from editable import KERN, MISREAD, SMILES, editable_output, record
from fastapi import FastAPI
from typer.testing import CliRunner

from docvlm import Settings
from docvlm.archive.output import Output
from docvlm.cli import app as cli
from docvlm.server import viewer_app
from tests.formats.schemas import validate

SETTINGS = Settings(device="cpu", render_timeout=None)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://docvlm")


def run(app: FastAPI, *calls: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        async with client(app) as http:
            return [await http.request(method, url, **kw) for method, url, kw in calls]

    return asyncio.run(go())


def test_a_save_is_checked_applied_and_written_into_the_folder(
    corpus: Path, tmp_path: Path
) -> None:
    out = editable_output(corpus, tmp_path)
    sha = record(out).sha256
    app = viewer_app(out, SETTINGS, edit=True)
    edit = {"sha256": sha, "page": 1, "version": 0}
    version, line, bad, cell, grid = run(
        app,
        ("GET", "/v1/documents/0/pages/1/version", {}),
        ("POST", "/v1/corrections", {"json": {**edit, "result": 0, "line": 0,
                                               "text": "Scheme 1. The product."}}),
        ("POST", "/v1/corrections", {"json": {**edit, "result": 2, "value": "C1CC(", "by": "x"}}),
        ("POST", "/v1/corrections", {"json": {**edit, "result": 1, "cell": [1, 1],
                                               "text": "CCCCAGTACACACGGAAACAT"}}),
        ("POST", "/v1/corrections", {"json": {**edit, "result": 1, "cell": [1, 0],
                                               "text": "a</td><td>b"}}),
    )  # fmt: skip
    assert version.json() == {"sha256": sha, "page": 1, "version": 0, "reviewed": False}
    assert line.status_code == 200 and line.json()["version"] == 1
    assert bad.status_code == 422 and "does not parse as molecule" in bad.json()["detail"]
    assert cell.status_code == 200 and cell.json()["version"] == 2  # another place: merged
    assert grid.status_code == 422 and "changes the table's grid" in grid.json()["detail"]
    fixed = record(out).pages[0].results
    assert fixed[0].lines[0].text == "Scheme 1. The product."  # type: ignore[union-attr]
    assert fixed[1].table.grid()[1][1] == "CCCCAGTACACACGGAAACAT"  # type: ignore[union-attr]
    assert fixed[2].molecule.smiles == MISREAD and not fixed[2].corrected  # type: ignore[union-attr]
    (alto,) = out.glob("*/alto/page-0001.xml")
    tree = validate(alto.read_text(encoding="utf-8"), "alto-4-4.xsd")
    strings = tree.xpath("//a:String/@CONTENT", namespaces={"a": tree.getroot().nsmap[None]})
    assert "Scheme 1. The product." in strings and "Scheme 1. The prodnct." not in strings
    again = run(app, ("GET", "/v1/documents/0/pages/1/version", {}))[0].json()
    assert again["version"] == 2 == Output.existing(out).corrections().version(sha, 1)


def test_two_people_saving_one_place_at_once_the_second_is_told_the_version(
    corpus: Path, tmp_path: Path
) -> None:
    out = editable_output(corpus, tmp_path)
    sha = record(out).sha256
    app = viewer_app(out, SETTINGS, edit=True)

    def cell(text: str, by: str) -> dict[str, Any]:
        return {"sha256": sha, "page": 1, "result": 1, "cell": [2, 1], "text": text,
                "version": 0, "by": by}  # fmt: skip

    async def go() -> list[httpx.Response]:
        async with client(app) as http:
            return list(
                await asyncio.gather(
                    http.post("/v1/corrections", json=cell("GATTACA", "ann")),
                    http.post("/v1/corrections", json=cell("TTAGGG", "bob")),
                    http.post("/v1/corrections", json={**cell("x", "cy"), "cell": [3, 1]}),
                )
            )

    first, second, other = asyncio.run(go())
    codes = sorted([first.status_code, second.status_code])
    assert codes == [200, 409] and other.status_code == 200  # another cell is merged
    won, lost = (first, second) if first.status_code == 200 else (second, first)
    assert lost.json()["current"] >= 1 and "was corrected by" in lost.json()["detail"]
    grid = record(out).pages[0].results[1].table.grid()  # type: ignore[union-attr]
    winner = json.loads(won.request.content)["text"]
    assert grid[2][1] == winner and grid[3][1] == "x"
    log = [json.loads(x) for x in (out / "_corrections.jsonl").read_text().splitlines()]
    assert [e["version"] for e in log] == [1, 2] and {e["text"] for e in log} == {winner, "x"}
    # sent again at the current version, the second save goes through
    retry = {**json.loads(lost.request.content), "version": lost.json()["current"]}
    (again,) = run(app, ("POST", "/v1/corrections", {"json": retry}))
    assert again.status_code == 200 and again.json()["version"] == 3


def test_editing_is_off_unless_asked_and_needs_the_token_when_one_is_set(
    corpus: Path, tmp_path: Path
) -> None:
    out = editable_output(corpus, tmp_path)
    save = {"sha256": record(out).sha256, "page": 1, "reviewed": True}
    (off,) = run(viewer_app(out, SETTINGS), ("POST", "/v1/corrections", {"json": save}))
    assert off.status_code == 403 and "--edit" in off.json()["detail"]
    locked = viewer_app(out, SETTINGS, edit=True, token="s3cret")
    state, none, wrong, right = run(
        locked,
        ("GET", "/v1/editing", {}),
        ("POST", "/v1/corrections", {"json": save}),
        ("POST", "/v1/corrections", {"json": save, "headers": {"Authorization": "Bearer nope"}}),
        ("POST", "/v1/corrections", {"json": save, "headers": {"Authorization": "Bearer s3cret"}}),
    )
    assert state.json() == {"enabled": True, "token": True}
    assert (none.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert Output.existing(out).corrections().reviewed(str(save["sha256"]), 1)
    assert not list(out.glob("*/.tmp*"))


def test_view_refuses_to_edit_beyond_localhost_without_a_token(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    ran = CliRunner().invoke(
        cli, ["view", str(tmp_path / "out"), "--edit", "--host", "0.0.0.0"], env={}
    )
    assert ran.exit_code == 2 and "needs a token" in ran.output


def test_view_says_in_one_line_which_log_line_does_not_read(corpus: Path, tmp_path: Path) -> None:
    out = editable_output(corpus, tmp_path)
    log = Output.existing(out).corrections_file
    log.write_text('{"sha256": "not a whole entry"\n')
    ran = CliRunner().invoke(cli, ["view", str(out), "--port", "1"])  # refused before serving
    assert ran.exit_code == 1, ran.output  # as docvlm review says it
    (line,) = ran.stderr.splitlines()
    assert line.startswith("error: ") and f"{log}, line 1" in line


def test_previews_draw_with_rdkit_and_verovio_and_rebuild_a_table(
    corpus: Path, tmp_path: Path
) -> None:
    from music21 import converter
    from rdkit import Chem

    out = editable_output(corpus, tmp_path)
    kern = (corpus / KERN).read_text()
    hostile = '<table><tr><td><img src=x onerror="alert(1)">a</td><td>b<script>x</script></td></tr>'
    molecule, bad, score, table, big = run(
        viewer_app(out, SETTINGS, edit=True),
        ("POST", "/v1/preview", {"json": {"task": "molecule", "value": SMILES}}),
        ("POST", "/v1/preview", {"json": {"task": "molecule", "value": "C1CC("}}),
        ("POST", "/v1/preview", {"json": {"task": "music", "value": kern}}),
        ("POST", "/v1/preview", {"json": {"task": "table", "value": hostile}}),
        ("POST", "/v1/preview", {"json": {"task": "table", "value": "<td>" * 300_000}}),
    )
    assert molecule.headers["content-type"].startswith("image/svg+xml")
    assert "script-src" not in molecule.headers["content-security-policy"]
    atoms = {int(a) for a in __import__("re").findall(r"atom-(\d+)", molecule.text)}
    assert len(atoms) == Chem.MolFromSmiles(SMILES).GetNumAtoms()
    assert bad.status_code == 422 and "RDKit" in bad.json()["detail"]
    heads = sum(len(n.pitches) for n in converter.parseData(kern, format="humdrum").recurse().notes)
    assert score.text.count('class="note"') == heads
    assert table.json()["shape"] == [1, 2]
    assert "<img" not in table.json()["html"] and "<script" not in table.json()["html"]
    assert big.status_code == 422  # over MAX_PREVIEW, refused before any parsing


def test_a_jsonl_output_is_shown_corrected_before_its_compaction(
    corpus: Path, tmp_path: Path
) -> None:
    folder = editable_output(corpus, tmp_path)
    jsonl = tmp_path / "out.jsonl"
    jsonl.write_text(record(folder).model_dump_json() + "\n")
    app = viewer_app(jsonl, SETTINGS, edit=True)
    edit = {"sha256": record(folder).sha256, "page": 1, "result": 0, "version": 0}
    saved, shown = run(
        app,
        ("POST", "/v1/corrections", {"json": {**edit, "line": 1, "text": "Yields after 2 steps."}}),
        ("GET", "/v1/documents/0", {}),
    )
    assert saved.status_code == 200
    assert jsonl.read_text() == record(folder).model_dump_json() + "\n"  # the file waits
    lines = shown.json()["pages"][0]["results"][0]["lines"]
    assert [x["text"] for x in lines] == ["Scheme 1. The prodnct.", "Yields after 2 steps."]
    assert shown.json()["pages"][0]["results"][0]["corrected"] is True


def test_a_save_with_a_loosely_typed_value_is_refused(corpus: Path, tmp_path: Path) -> None:
    out = editable_output(corpus, tmp_path)
    sha = record(out).sha256
    app = viewer_app(out, SETTINGS, edit=True)
    page = {"sha256": sha, "page": 1, "version": 0}
    word, number, short, cell = run(
        app,
        ("POST", "/v1/corrections", {"json": {**page, "reviewed": "yes"}}),
        ("POST", "/v1/corrections", {"json": {**page, "page": "1", "reviewed": True}}),
        ("POST", "/v1/corrections", {"json": {**page, "result": 1, "cell": [1], "text": "x"}}),
        ("POST", "/v1/corrections", {"json": {**page, "result": 1, "cell": [1, 1],
                                               "text": "CCCCAGTACACACGGAAACAT"}}),
    )  # fmt: skip
    causes = [r.json()["detail"][0] for r in (word, number, short)]
    assert [r.status_code for r in (word, number, short)] == [422, 422, 422]
    assert [c["loc"] for c in causes] == [["body", "reviewed"], ["body", "page"], ["body", "cell"]]
    assert "give [row, col]" in causes[2]["msg"]
    assert cell.status_code == 200 and cell.json()["version"] == 1  # a JSON list is a cell
    assert not Output.existing(out).corrections().reviewed(sha, 1)
