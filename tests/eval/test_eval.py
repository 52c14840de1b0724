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
    music_error_rates,
    s_teds,
    ser,
    smiles_exact_match,
    tanimoto,
    teds,
    text_cer,
    text_wer,
    word_f1,
)
from docvlm.eval.tables import EXTRA_CELLS, oversized
from parsers import Box, Table, kern_to_ekern, parse_table


def page(rows: str) -> str:
    return f"<html><body><table>{rows}</table></body></html>"


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


def test_teds_counts_text_after_inline_markup() -> None:
    # content tokens <b> T o t a l </b> ' ' 1 2: two of ten differ; nodes tr, td, b
    pred = page("<tr><td><b>Total</b> 12</td></tr>")
    true = page("<tr><td><b>Total</b> 99</td></tr>")
    assert teds(pred, true) == pytest.approx(1 - 0.2 / 3)
    assert s_teds(pred, true) == 1.0
    assert teds(page("<tr><td><i>Total</i> 12</td></tr>"), pred) == pytest.approx(1 - 0.2 / 3)


def test_teds_on_empty_tables_and_ignored_nodes() -> None:
    assert teds(page(""), page(" ")) == 1.0  # two empty tables (not the identity shortcut)
    assert teds(page(""), page("<tr><td>a</td></tr>")) == 0.0  # insert tr and td: 2 of 2
    assert teds(page("<tr><td>a</td></tr>"), "") == 0.0
    bold = page("<tr><td><b>a</b></td></tr>")
    plain = page("<tr><td>a</td></tr>")
    assert teds(bold, plain) == pytest.approx(1 - (2 / 3) / 3)
    assert teds(bold, plain, ignore_nodes=["b"]) == 1.0
    assert teds(plain, bold, ignore_nodes=["b"]) == 1.0  # stripped on both sides
    # an empty cell renamed into a written one costs 1, whichever side is empty
    empty_cell = page("<tr><td></td></tr>")
    assert teds(empty_cell, plain) == teds(plain, empty_cell) == 0.5


def test_rebuilt_pubtabnet_html_scores_like_the_original(corpus: Path) -> None:
    # parse_table is faithful: putting a prediction through it changes no TEDS value
    # except where it repairs the prediction (a cut rowspan) or strips a trailing space.
    reference = json.loads((corpus / "tables/pubtabnet/teds_reference.json").read_text())
    same = 0
    for pair in reference["pairs"][:30]:  # a third of them: TEDS is slow in pure Python
        table = parse_table(pair["pred"])
        if table.repairs or " </td>" in pair["pred"]:
            continue
        rebuilt = f"<html><body>{table.html}</body></html>"
        assert teds(rebuilt, pair["true"]) == pytest.approx(pair["teds"], abs=1e-9)
        same += 1
    assert same >= 25


def test_grits_identical_and_shifted() -> None:
    truth = "<tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr>"
    assert grits_top(truth, truth) == 1.0 and grits_con(truth, truth) == 1.0
    missing_row = "<tr><td>a</td><td>b</td></tr>"
    scores = grits(missing_row, truth)
    assert scores["con"].precision == 1.0 and scores["con"].recall == 0.5
    assert scores["con"].fscore == pytest.approx(2 / 3)
    merged = '<tr><td colspan="2">ab</td></tr><tr><td>c</td><td>d</td></tr>'
    assert 0 < grits_top(merged, truth) < 1


def test_grits_precision_of_a_larger_prediction() -> None:
    truth = "<tr><td>a</td><td>b</td></tr>"
    larger = "<tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr>"
    for score in grits(larger, truth).values():
        assert tuple(score) == pytest.approx((2 / 3, 0.5, 1.0))
    assert grits_top(larger, truth) == pytest.approx(2 / 3)


def test_grits_with_rowspans() -> None:
    truth = '<tr><td rowspan="2">a</td><td>b</td></tr><tr><td>c</td></tr>'
    flat = "<tr><td>a</td><td>b</td></tr><tr><td></td><td>c</td></tr>"
    scores = grits(flat, truth)
    # Con: the spanning "a" fills both its slots; the flat table has "" below it
    assert tuple(scores["con"]) == pytest.approx((0.75, 0.75, 0.75))
    # Top: each slot of the span has IoU 1/2 (over the enclosing rectangle) with a 1x1 cell
    assert tuple(scores["top"]) == pytest.approx((0.75, 0.75, 0.75))
    assert grits_con(truth, truth) == grits_top(truth, truth) == 1.0
    partial = "<tr><td>ab</td><td>b</td></tr><tr><td>ab</td><td>c</td></tr>"
    # LCS similarity of "ab" and "a": 2 * 1 / 3
    assert grits_con(partial, truth) == pytest.approx((2 * (2 / 3) + 2) / 4)


def test_grits_on_empty_tables() -> None:
    empty = Table(cells=(), shape=(0, 0))
    one = parse_table("<td>a</td>")
    assert tuple(grits(empty, empty)["top"]) == (1.0, 1.0, 1.0)
    assert tuple(grits(empty, one)["con"]) == (0.0, 1.0, 0.0)
    assert tuple(grits(one, empty)["con"]) == (0.0, 0.0, 1.0)


def test_oversized_predictions_score_zero() -> None:
    truth = page("<tr><td>a</td></tr>")
    limit = 2 + EXTRA_CELLS
    at_limit = page("<tr>" + "<td>a</td>" * limit + "</tr>")
    over = page("<tr>" + "<td>a</td>" * (limit + 1) + "</tr>")
    assert teds(at_limit, truth) == pytest.approx(1 - (limit - 1) / (limit + 1))  # deletions
    assert teds(over, truth) == 0.0
    assert grits_con(at_limit, truth) == pytest.approx(2 * (1 / limit) / (1 / limit + 1))
    assert tuple(grits(over, truth)["con"]) == (0.0, 0.0, 0.0)
    assert oversized(limit, 1) is None
    assert oversized(limit + 1, 1) == (
        f"prediction has {limit + 1} cells, more than {limit} (twice the truth's 1 plus "
        f"{EXTRA_CELLS}): scored 0"
    )


def test_eval_reports_oversized_records(tmp_path: Path) -> None:
    predictions = tmp_path / "p.jsonl"
    truth = tmp_path / "t.jsonl"
    hostile = "<tr>" + "<td>x</td>" * 20_000 + "</tr>"
    _jsonl(
        predictions,
        [
            {"id": "a", "html": hostile},
            {"id": "b", "html": "<td>b</td>"},
            {"id": "c", "html": "no table here"},  # unparsable: 0 for every metric
        ],
    )
    _jsonl(
        truth,
        [
            {"id": "a", "html": "<td>x</td>"},
            {"id": "b", "html": "<table><tr><td>b</td></tr></table>"},
            {"id": "c", "html": "<td>c</td>"},
        ],
    )
    report = evaluate("table", predictions, truth)
    # b: GriTS reads the same grid; TEDS counts the <tr> that the prediction left out
    sixth, third = pytest.approx(100 / 6), pytest.approx(100 / 3)
    assert report.metrics == {
        "teds": sixth,
        "s_teds": sixth,
        "grits_top": third,
        "grits_con": third,
    }
    assert report.scored_zero == {"a": oversized(20_000, 1)}


def test_molecule_metrics() -> None:
    Chem = pytest.importorskip("rdkit.Chem")
    assert smiles_exact_match("OCC", "CCO")
    assert not smiles_exact_match("C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O")  # stereo matters
    assert inchikey_match("Oc1ccccn1", "O=c1cccc[nH]1")  # tautomers share an InChIKey
    assert not inchikey_match("F/C=C/F", "F/C=C\\F")  # E and Z are different molecules
    assert not inchikey_match("C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O")
    assert inchikey_match("F/C=C/F", "F\\C=C\\F")  # the same E isomer written twice
    for pred, true in (("C1CC", "CCO"), ("CCO", "C1CC"), ("C1CC", "C1CC"), ("", "")):
        assert not inchikey_match(pred, true)
        assert not smiles_exact_match(pred, true)
        assert tanimoto(pred, true) == 0.0
    assert tanimoto("CCO", "OCC") == 1.0
    from rdkit import DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fingerprints = [generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in ("CCO", "CCCO")]
    assert tanimoto("CCO", "CCCO") == DataStructs.TanimotoSimilarity(*fingerprints)
    assert 0 < tanimoto("CCO", "CCCO") < 1


def test_music_error_rates(corpus: Path) -> None:
    kern = sorted((corpus / "music/kern").glob("*.krn"))[0].read_text(encoding="utf-8")
    assert cer([kern], [kern]) == ser([kern], [kern]) == ler([kern], [kern]) == 0.0
    assert cer([kern_to_ekern(kern)], [kern]) == 0.0  # encodings do not count as errors
    assert ser(["4c 4d"], ["4c 4e"]) == 50.0
    assert ler(["4c\n4d"], ["4c\n4e\n4f"]) == pytest.approx(200 / 3)
    assert cer(["4c", "4e"], ["4d", "4e"]) == 25.0  # one error in four characters
    assert music_error_rates(["4c"], ["4d"]) == {"cer": 50.0, "ser": 100.0, "ler": 100.0}
    assert cer([""], [""]) == 0.0
    with pytest.raises(ValueError, match="2 predictions for 1 truths"):
        cer(["a", "b"], ["a"])
    flat = "**bekern<t>**bekern<b>4·c<t>4@e<b>*-<t>*-<b>"
    assert cer([flat], ["**kern\t**kern\n4c\t4e\n*-\t*-\n"]) == 0.0


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
    assert score.f1 == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    assert (score.predicted, score.true) == (3, 2)
    # IoU exactly at the threshold matches; just below it does not
    half = [Word(text="the", box=Box(x0=0, y0=0, x1=10, y1=5))]
    assert word_f1(half, truth[:1]).matched == 1
    assert word_f1(half, truth[:1], iou=0.51).matched == 0
    wrong_text = [Word(text="The", box=Box(x0=0, y0=0, x1=10, y1=10))]
    assert word_f1(wrong_text, truth[:1]).f1 == 0.0
    assert tuple(word_f1([], []).model_dump().values()) == (1.0, 1.0, 1.0, 0, 0, 0)
    assert (word_f1([], truth).precision, word_f1([], truth).recall) == (0.0, 0.0)
    assert (word_f1(preds, []).precision, word_f1(preds, []).recall) == (0.0, 1.0)
    assert text_cer(["ab", "c"], ["abc", "c"]) == 25.0  # summed over the corpus
    assert text_cer([""], [""]) == text_wer([""], [""]) == 0.0
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


def _jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_eval_reads_docvlm_results_and_plain_records(tmp_path: Path) -> None:
    pytest.importorskip("rdkit")
    truth = _jsonl(
        tmp_path / "t.jsonl",
        [
            {"id": "a.png:1", "smiles": "CCO"},
            {"id": "b.png:2", "smiles": "F/C=C/F"},
            {"id": "c.png:1", "smiles": "c1ccccc1"},
            {"id": "d.png:1", "smiles": "CC(=O)O"},
        ],
    )
    # docvlm results: the id comes from the file name and page; a missing molecule reads raw
    predictions = tmp_path / "p.json"
    predictions.write_text(
        json.dumps(
            [
                {"source": "/scans/a.png", "page": 1, "molecule": {"smiles": "OCC"}},
                {"source": "/scans/b.png", "page": 2, "molecule": None, "raw": "F/C=C\\F"},
                {"source": "/scans/d.png", "molecule": {"smiles": "OC(C)=O"}},  # page 1
            ]
        )
    )
    report = evaluate("molecule", predictions, truth)
    assert report.count == 4 and report.missing == 1
    assert report.metrics["smiles_exact"] == 50.0
    assert report.metrics["inchikey_exact"] == 50.0
    assert report.paper == {"smiles_exact": "94.8 (10B, MolScribe test)"}
    assert report.scored_zero == {}


def test_eval_music_and_text(tmp_path: Path) -> None:
    truth = _jsonl(
        tmp_path / "t.jsonl",
        [
            {"id": 1, "kern": "**kern\n4c\n4d\n*-\n"},
            {"id": 2, "kern": "**kern\n4e\n*-\n"},
        ],
    )
    preds = _jsonl(tmp_path / "p.jsonl", [{"id": 1, "score": {"kern": "**kern\n4c\n4e\n*-\n"}}])
    report = evaluate("music", preds, truth)
    # record 1: one symbol of four wrong; record 2 missing: all three symbols
    assert report.metrics["ser"] == pytest.approx(100 * 4 / 7)
    assert report.metrics["ler"] == pytest.approx(100 * 4 / 7)
    boxes = {"x0": 0, "y0": 0, "x1": 10, "y1": 10}
    text_truth = _jsonl(
        tmp_path / "tt.jsonl",
        [
            {"id": "p", "text": "the cat", "words": [{"text": "the", "box": [0, 0, 10, 10]}]},
            {
                "id": "q",
                "lines": [
                    {"text": "dog", "box": boxes},
                    {"text": "x", "box": None},
                    {"text": "emu", "box": {"x0": 50, "y0": 0, "x1": 60, "y1": 10}},
                ],
            },
        ],
    )
    text_preds = _jsonl(
        tmp_path / "tp.jsonl",
        [
            {"id": "p", "text": "the bat", "words": [{"text": "the", "box": boxes}]},
            {"id": "q", "lines": [{"text": "dog", "box": boxes}, {"text": "cow", "box": boxes}]},
        ],
    )
    report = evaluate("text", text_preds, text_truth)
    # "the cat" -> "the bat": 1 of 7; "dog\\nx\\nemu" -> "dog\\ncow": 5 of 9
    assert report.metrics["cer"] == pytest.approx(100 * 6 / 16)
    assert report.metrics["wer"] == pytest.approx(100 * 3 / 5)
    # words: 2 matched of 3 predicted and 3 true (the unboxed line is not a word)
    assert report.metrics["word_precision"] == pytest.approx(200 / 3)
    assert report.metrics["word_recall"] == pytest.approx(200 / 3)
    assert report.metrics["word_f1"] == pytest.approx(200 / 3)
    # a prediction with more words than matched: precision and recall differ
    fewer = _jsonl(tmp_path / "tf.jsonl", [{"id": "p", "words": [{"text": "the", "box": boxes}]}])
    one = evaluate("text", fewer, text_truth).metrics
    assert (one["word_precision"], one["word_recall"]) == (100.0, pytest.approx(100 / 3))
    assert one["word_f1"] == pytest.approx(100 * 2 * (1 / 3) / (1 + 1 / 3))


def test_eval_record_errors(tmp_path: Path) -> None:
    from docvlm.errors import InputError

    not_objects = tmp_path / "x.jsonl"
    not_objects.write_text('{"id": 1, "smiles": "C"}\n[1, 2]\n')
    with pytest.raises(InputError, match="line 2 is not a JSON object"):
        evaluate("molecule", not_objects, not_objects)
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="no truth records"):
        evaluate("molecule", empty, empty)
    nameless = _jsonl(tmp_path / "n.jsonl", [{"id": "a", "smiles": "C"}, {"smiles": "C"}])
    with pytest.raises(InputError, match=r"n\.jsonl: record 2 has no 'id', 'source' or 'image'"):
        evaluate("molecule", nameless, nameless)
    result = CliRunner().invoke(
        app, ["eval", "-t", "molecule", "-p", str(tmp_path / "nope.json"), "--truth", str(empty)]
    )
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'nope.json'}: no such file\n"


def test_eval_names_unreadable_and_ambiguous_files(tmp_path: Path) -> None:
    from docvlm.errors import InputError

    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(InputError, match=r"b\.jsonl: cannot read \(not UTF-8 text"):
        evaluate("molecule", binary, binary)
    numbers = tmp_path / "a.json"
    numbers.write_text("[1, 2]")
    with pytest.raises(InputError, match=r"a\.json: item 1 is not a JSON object"):
        evaluate("molecule", numbers, numbers)
    twins = _jsonl(
        tmp_path / "p.jsonl",
        [{"source": "x/a.png", "smiles": "C"}, {"source": "y/a.png", "smiles": "CC"}],
    )
    with pytest.raises(InputError, match=r"record 2 has the id 'a\.png:1' of an earlier record"):
        evaluate("molecule", twins, twins)


def test_eval_takes_training_records_as_truth(corpus: Path, tmp_path: Path) -> None:
    """A held-out split as ``docvlm data`` writes it ({image, target}) against what
    ``read-table --json`` prints for the same images, matched by image name and page."""
    reference = json.loads((corpus / "tables/pubtabnet/teds_reference.json").read_text())
    pairs = reference["pairs"][:4]
    truth = _jsonl(
        tmp_path / "held.jsonl",
        [{"image": f"crops/{p['id']}.png", "target": p["true"]} for p in pairs],
    )
    predictions = _jsonl(
        tmp_path / "preds.json",
        [
            {"source": f"/elsewhere/{p['id']}.png", "page": 1, "table": {"html": p["pred"]}}
            for p in pairs[:3]
        ],
    )
    report = evaluate("table", predictions, truth)
    assert report.count == 4 and report.missing == 1
    expected = sum(p["teds"] for p in pairs[:3]) / 4 * 100
    assert report.metrics["teds"] == pytest.approx(expected)


def test_grits_top_inside_colspans_and_oversized_by_grid_size() -> None:
    # slots inside a span have boxes left of their own column: (-1, 0, 2, 1) and so on
    truth = '<tr><td colspan="3">a</td></tr>'
    pred = '<tr><td colspan="2">a</td><td>b</td></tr>'
    assert grits_top(pred, truth) == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)
    two = "<tr><td>a</td><td>b</td></tr>"  # a 1 x 2 truth allows 2 * 2 + 64 positions
    at_limit = "<tr>" + "<td>a</td>" * (4 + EXTRA_CELLS) + "</tr>"
    assert grits(at_limit, two)["con"].recall == 0.5
