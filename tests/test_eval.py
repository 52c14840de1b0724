from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docvlm.cli import app
from docvlm.eval import (
    Word,
    cer,
    evaluate,
    grits,
    grits_con,
    grits_top,
    inchikey_match,
    ler,
    s_teds,
    ser,
    smiles_exact_match,
    tanimoto,
    teds,
    text_cer,
    text_wer,
    word_f1,
)
from parsers import Box, kern_to_ekern


def test_teds_matches_the_official_implementation(corpus: Path) -> None:
    reference = json.loads((corpus / "tables/pubtabnet/teds_reference.json").read_text())
    pairs = reference["pairs"]
    assert len(pairs) == 98
    assert any(p["teds"] < 0.99 for p in pairs)  # the set holds real disagreements
    for pair in pairs:
        assert abs(teds(pair["pred"], pair["true"]) - pair["teds"]) <= 1e-6, pair["id"]
        assert abs(s_teds(pair["pred"], pair["true"]) - pair["s_teds"]) <= 1e-6, pair["id"]


def test_teds_edge_cases() -> None:
    table = "<html><body><table><tr><td>a</td></tr></table></body></html>"
    assert teds("", table) == 0.0
    assert teds("<html><body><p>x</p></body></html>", table) == 0.0
    assert teds(table, table) == 1.0
    other = table.replace(">a<", ">b<")
    # one cell renamed at full cost out of 2 nodes (tr, td)
    assert teds(other, table) == pytest.approx(0.5)
    assert s_teds(other, table) == 1.0


def test_grits_identical_and_shifted() -> None:
    truth = "<tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr>"
    assert grits_top(truth, truth) == 1.0 and grits_con(truth, truth) == 1.0
    missing_row = "<tr><td>a</td><td>b</td></tr>"
    scores = grits(missing_row, truth)
    assert scores["con"].precision == 1.0 and scores["con"].recall == 0.5
    assert scores["con"].fscore == pytest.approx(2 / 3)
    merged = '<tr><td colspan="2">ab</td></tr><tr><td>c</td><td>d</td></tr>'
    assert 0 < grits_top(merged, truth) < 1


def test_molecule_metrics() -> None:
    assert smiles_exact_match("OCC", "CCO")
    assert not smiles_exact_match("C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O")  # stereo matters
    assert inchikey_match("Oc1ccccn1", "O=c1cccc[nH]1")  # tautomers share an InChIKey
    assert tanimoto("CCO", "OCC") == 1.0
    assert 0 < tanimoto("CCO", "CCCO") < 1
    assert tanimoto("not smiles", "CCO") == 0.0


def test_music_error_rates(corpus: Path) -> None:
    kern = sorted((corpus / "music/kern").glob("*.krn"))[0].read_text(encoding="utf-8")
    assert cer([kern], [kern]) == ser([kern], [kern]) == ler([kern], [kern]) == 0.0
    assert cer([kern_to_ekern(kern)], [kern]) == 0.0  # encodings do not count as errors
    assert ser(["4c 4d"], ["4c 4e"]) == 50.0
    assert ler(["4c\n4d"], ["4c\n4e\n4f"]) == pytest.approx(200 / 3)


def test_ocr_metrics() -> None:
    truth = [
        Word(text="the", box=Box(x0=0, y0=0, x1=10, y1=10)),
        Word(text="cat", box=Box(x0=20, y0=0, x1=30, y1=10)),
    ]
    preds = [
        Word(text="the", box=Box(x0=1, y0=0, x1=10, y1=10)),
        Word(text="cat", box=Box(x0=40, y0=0, x1=50, y1=10)),
        Word(text="the", box=Box(x0=0, y0=0, x1=10, y1=10)),
    ]
    score = word_f1(preds, truth)
    assert (score.matched, score.precision, score.recall) == (1, 1 / 3, 0.5)
    assert text_cer(["kitten"], ["sitting"]) == pytest.approx(300 / 7)
    assert text_wer(["a b c"], ["a x c"]) == pytest.approx(100 / 3)


def test_eval_command_on_pubtabnet(corpus: Path, tmp_path: Path) -> None:
    reference = json.loads((corpus / "tables/pubtabnet/teds_reference.json").read_text())
    pairs = reference["pairs"][:6]
    predictions = tmp_path / "p.jsonl"
    truth = tmp_path / "t.jsonl"
    predictions.write_text(
        "\n".join(json.dumps({"id": p["id"], "html": p["pred"]}) for p in pairs[:5])
    )
    truth.write_text("\n".join(json.dumps({"id": p["id"], "html": p["true"]}) for p in pairs))
    report = evaluate("table", predictions, truth)
    expected = sum(p["teds"] for p in pairs[:5]) / 6 * 100
    assert report.metrics["teds"] == pytest.approx(expected)
    assert report.missing == 1 and report.paper["teds"].startswith("97.3")
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--task",
            "table",
            "--predictions",
            str(predictions),
            "--truth",
            str(truth),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "teds" in result.stdout and json.loads(out.read_text())["count"] == 6


def test_eval_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json")
    result = CliRunner().invoke(
        app, ["eval", "-t", "molecule", "-p", str(bad), "--truth", str(bad)]
    )
    assert result.exit_code == 1 and "bad.jsonl: not JSON Lines" in result.stderr
