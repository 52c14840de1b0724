"""PubTabNet's own example layout (issue 20): ``src/sample_gt.json`` maps an image name to
``{"html": ...}`` and ``src/sample_pred.json`` maps it to the HTML, as its TEDS reads them.
``docvlm eval`` scores them, and ``docvlm data pubtabnet`` makes training records of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docvlm.eval.runner import evaluate
from docvlm.finetune.datasets import pubtabnet_records
from parsers import parse_table


def _reference(corpus: Path) -> list[dict[str, object]]:
    pairs: list[dict[str, object]] = json.loads(
        (corpus / "tables/pubtabnet/teds_reference.json").read_text()
    )["pairs"]
    return pairs


def test_eval_scores_pubtabnets_own_layout_as_its_teds_does(corpus: Path, tmp_path: Path) -> None:
    """Scores equal the official implementation's, from the reference vectors."""
    pairs = [p for p in _reference(corpus) if str(p["id"]).endswith(":text")]
    assert len(pairs) >= 10
    names = [str(p["id"]).split(":")[0] for p in pairs]
    gt = {n: {"html": p["true"]} for n, p in zip(names, pairs, strict=True)}
    pred = {n: p["pred"] for n, p in zip(names, pairs, strict=True)}
    (tmp_path / "sample_gt.json").write_text(json.dumps(gt, indent=4))
    (tmp_path / "sample_pred.json").write_text(json.dumps(pred, indent=4))
    report = evaluate("table", tmp_path / "sample_pred.json", tmp_path / "sample_gt.json")
    official = 100 * sum(float(str(p["teds"])) for p in pairs) / len(pairs)
    assert report.count == len(pairs) and report.missing == 0
    assert report.metrics["teds"] == pytest.approx(official, abs=1e-4)
    assert report.metrics["teds"] < 100  # the perturbed predictions really differ


def test_data_pubtabnet_takes_sample_gt_json(corpus: Path, tmp_path: Path) -> None:
    examples = corpus / "tables/pubtabnet/examples"
    truths = {
        str(p["id"]).split(":")[0]: str(p["true"])
        for p in _reference(corpus)
        if (examples / str(p["id"]).split(":")[0]).is_file()
    }
    assert truths
    sample = tmp_path / "sample_gt.json"
    sample.write_text(json.dumps({n: {"html": h} for n, h in truths.items()}, indent=4))
    skipped: list[str] = []
    records = list(pubtabnet_records(sample, images=examples, skipped=skipped))
    assert skipped == [] and len(records) == len(truths)
    for record in records:
        truth = truths[Path(record["image"]).name]
        # the target is the table as a model writes it: it reads back to the very truth
        assert f"<html><body>{parse_table(record['target']).html}</body></html>" == truth
    # and the command line takes it
    from docvlm.cli import app

    out = tmp_path / "D.jsonl"
    run = CliRunner().invoke(
        app, ["data", "pubtabnet", str(sample), "--images", str(examples), "--out", str(out)]
    )
    assert run.exit_code == 0, run.output
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(Path(w["image"]).name, w["target"]) for w in written] == [
        (Path(r["image"]).name, r["target"]) for r in records
    ]
