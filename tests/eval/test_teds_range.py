"""TEDS stays in [0, 1]: model noise that parses into elements (an untrained model's run of
``<loc>`` tokens, read back raw because it is no table) scores 0, not below, as no table
does; ``docvlm eval`` reports it so."""

from __future__ import annotations

import json
from pathlib import Path

from docvlm.eval import evaluate
from docvlm.eval.tables import s_teds, teds

TRUTH = (
    "<thead><tr><td><b>Trait</b></td><td><b>Mean</b></td></tr></thead>"
    "<tbody><tr><td>a</td><td>1.5</td></tr></tbody>"
)
#: What the random tiny checkpoint wrote for a PubTabNet crop (a parse error).
NOISE = "<loc0274>" * 30 + "<loc0983>" * 10


def _whole(body: str) -> str:
    return f"<html><body><table>{body}</table></body></html>"


def test_noise_that_parses_into_elements_scores_zero_not_below() -> None:
    from lxml import html

    chain = html.fromstring(_whole(NOISE)).xpath("body/table//*")
    assert len(chain) == 40  # lxml nests the unknown tags: the official formula gives < 0
    assert teds(_whole(NOISE), _whole(TRUTH)) == 0.0
    assert s_teds(_whole(NOISE), _whole(TRUTH)) == 0.0
    half = TRUTH.replace(">1.5<", ">2.5<")
    assert 0.0 < teds(_whole(half), _whole(TRUTH)) < 1.0


def test_eval_of_unparsed_readings_reports_zero(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    truth.write_text(json.dumps({"image": "crops/a.png", "target": TRUTH}) + "\n")
    predictions = tmp_path / "before.json"
    reading = {"source": "/x/a.png", "page": 1, "status": "parse_error", "table": None}
    predictions.write_text(json.dumps([{**reading, "raw": NOISE}]))
    report = evaluate("table", predictions, truth)
    assert report.count == 1 and report.missing == 0
    assert report.metrics["teds"] == 0.0 and report.metrics["s_teds"] == 0.0
