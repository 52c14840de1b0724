"""The correction loop, end to end (docs/finetuning.md, "The loop"): a model reads five
real PubTabNet crops wrong, a person corrects them in the viewer, the corrections become
training data, the model is fine-tuned on them, and then reads each table exactly.

Every step is the product's own: ``docvlm convert --task table --out DIR/`` with the
trainable tiny checkpoint (a real checkpoint directory, loaded as a hub id is), one
``POST /v1/corrections`` per table to the app ``docvlm view DIR --edit`` serves (the whole
output replaced by the ground truth as the model writes it, against the page version the
viewer reports), ``docvlm data corrections``, ``docvlm finetune --data`` and
``docvlm read-table --checkpoint NEW``. The tables read back are compared with PubTabNet's
ground truth cell by cell (grid position, spans, text) and by TEDS (docvlm.eval's, also
against the HTML PubTabNet's tokens make without docvlm).

The same run proves that ``docvlm data pubtabnet``'s training format is learnt: the
corrections' examples are checked to be PubTabNet's own examples (the same pixels once
padded to the square the model sees, the same target text), so the model trained here is
the one that format trains. Five tables at once, whose first cells differ, so a model that
ignores the image and writes one memorised table fails.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docvlm.cli import app
from parsers import parse_table

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytestmark = pytest.mark.slow

#: The five shortest real tables of the corpus's PubTabNet examples (163-330 tokens).
TABLES = (
    "PMC2753619_002_00.png",
    "PMC3907710_006_00.png",
    "PMC4517499_004_00.png",
    "PMC4776821_005_00.png",
    "PMC5679144_002_01.png",
)
#: The base reads a table in this many tokens at most: a random model writes noise to
#: the task's limit (4,096) otherwise, and noise of any length is a wrong reading.
FIRST_READING_TOKENS = 40
STEPS = 200
#: The tiny tower's patch gain (docvlm.finetune.tiny): strong enough that five strips of
#: table, mostly white paper, tell themselves apart within STEPS.
PATCH_GAIN = 30.0


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _cells(table: object) -> list[tuple[int, int, int, int, str]]:
    return [(c.row, c.col, c.rowspan, c.colspan, c.text) for c in table.cells]  # type: ignore[attr-defined]


def _teds(predicted: str, truth: str) -> float:
    from docvlm.eval.tables import teds

    def whole(body: str) -> str:
        return f"<html><body><table>{body}</table></body></html>"

    return teds(whole(predicted), whole(truth))


def _annotated(corpus: Path) -> dict[str, str]:
    """PubTabNet's HTML of the five tables, built from the annotation's tokens as its own
    tools do (no docvlm code), by image name."""
    annotations = corpus / "tables/pubtabnet/examples/PubTabNet_Examples.jsonl"
    tables = {}
    for line in annotations.read_text().splitlines():
        item = json.loads(line)
        if item["filename"] in TABLES:
            cells = iter(item["html"]["cells"])
            parts = [
                "".join(next(cells)["tokens"]) + token if token == "</td>" else token
                for token in item["html"]["structure"]["tokens"]
            ]
            tables[item["filename"]] = "".join(parts)
    return tables


def _ground_truth(corpus: Path, folder: Path) -> dict[str, dict[str, str]]:
    """``docvlm data pubtabnet``'s records of the five tables, by image name."""
    examples = corpus / "tables/pubtabnet/examples"
    lines = (examples / "PubTabNet_Examples.jsonl").read_text().splitlines()
    annotations = folder / "five.jsonl"
    annotations.write_text("\n".join(ln for ln in lines if json.loads(ln)["filename"] in TABLES))
    data = folder / "pubtabnet.jsonl"
    _run("data", "pubtabnet", str(annotations), "--images", str(examples), "--out", str(data))
    records = [json.loads(line) for line in data.read_text().splitlines()]
    return {Path(r["image"]).name: {**r, "image": str(folder / r["image"])} for r in records}


def _correct_in_viewer(out: Path, truth: dict[str, str]) -> list[int]:
    """One POST per document: its table replaced by the ground truth, against the page
    version the viewer gave; the status codes."""
    import httpx

    from docvlm import Settings
    from docvlm.server import viewer_app

    viewer = viewer_app(out, Settings(device="cpu", render_timeout=None), edit=True)

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=viewer)
        codes = []
        async with httpx.AsyncClient(transport=transport, base_url="http://docvlm") as http:
            listed = (await http.get("/v1/documents")).json()["documents"]
            assert len(listed) == len(truth)
            for document in listed:
                number = document["id"]
                page = (await http.get(f"/v1/documents/{number}/pages/1/version")).json()
                edit = {
                    "sha256": page["sha256"],
                    "page": 1,
                    "result": 0,
                    "value": truth[Path(document["source"]).name],
                    "version": page["version"],
                    "by": "loop-test",
                }
                saved = await http.post("/v1/corrections", json=edit)
                codes.append(saved.status_code)
                assert saved.status_code == 200, saved.text
                assert saved.json()["version"] == page["version"] + 1
        return codes

    return asyncio.run(go())


def test_corrections_in_the_viewer_teach_the_model_to_read_each_table(
    corpus: Path, tmp_path: Path
) -> None:
    from PIL import ImageChops

    from docvlm.finetune.data import load_square
    from docvlm.finetune.tiny import write_trainable_checkpoint

    base = write_trainable_checkpoint(tmp_path / "tiny", patch_gain=PATCH_GAIN)
    pubtabnet = _ground_truth(corpus, tmp_path)
    truth = {name: record["target"] for name, record in pubtabnet.items()}
    annotated = _annotated(corpus)
    assert all(_teds(truth[name], annotated[name]) == 1.0 for name in TABLES)
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in TABLES:
        shutil.copyfile(corpus / "tables/pubtabnet/examples" / name, scans / name)

    # 1. the base reads the five crops, and reads them wrong
    out = tmp_path / "out"
    limit = str(FIRST_READING_TOKENS)
    _run("convert", str(scans), "--task", "table", "--checkpoint", str(base),
         "--out", f"{out}/", "--max-new-tokens", limit, "--device", "cpu")  # fmt: skip
    first = {}
    for file in out.glob("*/document.json"):
        document = json.loads(file.read_text())
        (result,) = document["pages"][0]["results"]
        first[Path(document["source"]).name] = result["raw"]
    assert sorted(first) == sorted(TABLES)
    for name, raw in first.items():
        assert raw != truth[name], name
        read = _cells(parse_table(raw)) if "<td" in raw else []
        assert read != _cells(parse_table(truth[name])), name

    # 2. each is corrected in the viewer, the whole table replaced
    assert _correct_in_viewer(out, truth) == [200] * len(TABLES)

    # 3. the corrections become training data, and the model is trained on them
    data = tmp_path / "corrected" / "D.jsonl"
    _run("data", "corrections", str(out), "--task", "table", "--out", str(data))
    records = [json.loads(line) for line in data.read_text().splitlines()]
    assert len(records) == len(TABLES)
    by_pixels = {}
    for record in records:
        crop = load_square(data.parent / record["image"])
        same = [
            n
            for n, r in pubtabnet.items()
            if ImageChops.difference(crop, load_square(Path(r["image"]))).getbbox() is None
        ]
        assert len(same) == 1, f"{record['image']} is no PubTabNet crop as the model sees it"
        by_pixels[same[0]] = record["target"]
    # PubTabNet's own examples: the crop the model saw, and the target it is trained on
    assert by_pixels == truth
    new = tmp_path / "new"
    trained = CliRunner().invoke(
        app,
        ["finetune", "--task", "table", "--data", str(data), "--base", str(base),
         "--out", str(new), "--max-steps", str(STEPS), "--device", "cpu"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert f"{STEPS} steps on {len(TABLES)} examples" in trained.stderr

    # 4. the new checkpoint reads each corrected table exactly
    crops = [str(scans / name) for name in TABLES]
    printed = _run("read-table", *crops, "--checkpoint", str(new), "--json", "--device", "cpu")
    results = json.loads(printed)
    assert [Path(r["source"]).name for r in results] == list(TABLES)
    for name, result in zip(TABLES, results, strict=True):
        wanted = parse_table(truth[name])
        assert result["status"] == "ok", (name, result["raw"])
        assert tuple(result["table"]["shape"]) == wanted.shape, name
        assert _cells(parse_table(result["raw"])) == _cells(wanted), name
        assert _teds(result["raw"], truth[name]) == 1.0, name
        assert _teds(result["raw"], annotated[name]) == 1.0, name
        assert _teds(first[name], truth[name]) < 1.0, name
