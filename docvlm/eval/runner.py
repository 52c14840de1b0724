"""``docvlm eval``: score a JSONL of predictions against a JSONL of truths.

Records are matched by ``id``. Predictions may be plain records (``{"id", "html"}``,
``{"id", "smiles"}``, ``{"id", "kern"}``, ``{"id", "text", "words"}``) or docvlm results
as ``read-*  --json`` writes them (then ``id`` defaults to ``<file name>:<page>``). Truths
may also be training records, ``{"image", "target"}`` as ``docvlm data`` writes them (``id``
``<image name>:1``), so a held-out split scores as it is. A truth without a prediction
scores as an empty prediction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from statistics import fmean
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import docvlm.eval.molecules as molecules
import docvlm.eval.music as music
import docvlm.eval.ocr as ocr
import docvlm.eval.tables as tables
from docvlm.errors import InputError
from parsers import Box

__all__ = ["PAPER", "EvalReport", "EvalTask", "evaluate", "read_records"]

EvalTask = Literal["table", "molecule", "music", "text"]

#: PaliGemma 2 results (arXiv 2412.03555, appendix B) to compare against.
PAPER: dict[str, str] = {
    "teds": "97.3 PubTabNet / 98.9 FinTabNet",
    "smiles_exact": "94.8 (10B, MolScribe test)",
    "cer": "1.6 (GrandStaff)",
    "ser": "2.3 (GrandStaff)",
    "ler": "6.7 (GrandStaff)",
    "word_f1": "75.9 ICDAR'15 / 74.2 Total-Text",
}


class EvalReport(BaseModel):
    """Metric values (percent) over the matched records."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    task: EvalTask
    count: int = Field(description="truth records scored")
    missing: int = Field(description="truth records with no prediction (scored as empty)")
    metrics: dict[str, float] = Field(description="metric name -> value in percent")
    paper: dict[str, str] = Field(description="the paper's number for each metric, if any")
    scored_zero: dict[str, str] = Field(
        default_factory=dict,
        description="record id -> why it was scored 0 without comparison (an oversized "
        "prediction, see docvlm.eval.tables.oversized)",
    )


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """JSON objects of a JSONL file (a JSON array is accepted too, and PubTabNet's own
    ``{name: {"html": ...}}`` / ``{name: html}`` object, each name becoming the ``id``)."""
    if not path.is_file():
        raise InputError("no such file", source=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else f"not UTF-8 text ({error})"
        raise InputError(f"cannot read ({reason})", source=str(path)) from error
    try:
        keyed = _pubtabnet_layout(text)
        if keyed is not None:
            yield from keyed
            return
        if text.lstrip().startswith("["):
            items = json.loads(text)
            for number, item in enumerate(items, start=1):
                if not isinstance(item, dict):
                    raise InputError(f"item {number} is not a JSON object", source=str(path))
                yield item
            return
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise InputError(f"line {number} is not a JSON object", source=str(path))
                yield record
    except json.JSONDecodeError as error:
        raise InputError(f"not JSON Lines ({error})", source=str(path)) from error


def _pubtabnet_layout(text: str) -> list[dict[str, Any]] | None:
    """Records of PubTabNet's own layout (``sample_gt.json`` / ``sample_pred.json`` of its
    TEDS: image name -> ``{"html": ...}`` or the HTML itself), the name as ``id``; None
    for JSON Lines (or anything else)."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return None  # JSON Lines: one object per line
    if not isinstance(whole, dict) or {"id", "html", "image", "source"} & set(whole):
        return None  # a single record
    if not all(isinstance(value, dict | str) for value in whole.values()):
        return None
    return [
        {**(value if isinstance(value, dict) else {"html": value}), "id": name}
        for name, value in whole.items()
    ]


def _id(record: dict[str, Any]) -> str | None:
    if "id" in record:
        return str(record["id"])
    for key in ("source", "image"):
        if key in record:
            return f"{Path(str(record[key])).name}:{record.get('page', 1)}"
    return None


def _keyed(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(id, record) of every record in ``path``; a record without an id, or with one an
    earlier record has, is an error (two images of one name in two folders would
    otherwise be scored against each other silently)."""
    keyed: dict[str, dict[str, Any]] = {}
    for number, record in enumerate(read_records(path), start=1):
        key = _id(record)
        if key is None:
            raise InputError(
                f"record {number} has no 'id', 'source' or 'image' to match it by",
                source=str(path),
            )
        if key in keyed:
            raise InputError(
                f"record {number} has the id {key!r} of an earlier record (give each an 'id')",
                source=str(path),
            )
        keyed[key] = record
    return list(keyed.items())


def _nested(record: dict[str, Any], key: str, inner: str, nested: str) -> str:
    if key in record:
        return str(record[key] or "")
    if "target" in record:  # a training record
        return str(record["target"] or "")
    value = record.get(nested) or {}
    return str(value.get(inner) or record.get("raw") or "")


def _html(record: dict[str, Any]) -> str:
    markup = _nested(record, "html", "html", "table")
    if not markup or "<html" in markup:
        return markup
    body = markup if "<table" in markup else f"<table>{markup}</table>"
    return f"<html><body>{body}</body></html>"


def _words(record: dict[str, Any]) -> list[ocr.Word]:
    items = record.get("words")
    if items is None:
        items = [ln for ln in record.get("lines", []) if ln.get("box")]
    words = []
    for item in items:
        box = item["box"]
        if isinstance(box, list | tuple):
            box = dict(zip(("x0", "y0", "x1", "y1"), box, strict=True))
        words.append(ocr.Word(text=item["text"], box=Box(**box)))
    return words


def _plain_text(record: dict[str, Any]) -> str:
    if "text" in record:
        return str(record["text"])
    if "target" in record:  # a training record
        return str(record["target"])
    return "\n".join(str(ln.get("text", "")) for ln in record.get("lines", []))


def _table_metrics(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, float]:
    t, s, top, con = [], [], [], []
    for pred, true in pairs:
        p, g = _html(pred), _html(true)
        t.append(tables.teds(p, g))
        s.append(tables.s_teds(p, g))
        try:
            scores = tables.grits(p, g)
            top.append(scores["top"].fscore)
            con.append(scores["con"].fscore)
        except ValueError:  # an unparsable prediction scores 0
            top.append(0.0)
            con.append(0.0)
    return {"teds": _pct(t), "s_teds": _pct(s), "grits_top": _pct(top), "grits_con": _pct(con)}


def _molecule_metrics(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, float]:
    smiles = [
        (_nested(p, "smiles", "smiles", "molecule"), _nested(g, "smiles", "smiles", "molecule"))
        for p, g in pairs
    ]
    return {
        "smiles_exact": _pct([float(molecules.smiles_exact_match(p, g)) for p, g in smiles]),
        "inchikey_exact": _pct([float(molecules.inchikey_match(p, g)) for p, g in smiles]),
        "tanimoto": _pct([molecules.tanimoto(p, g) for p, g in smiles]),
    }


def _music_metrics(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, float]:
    preds = [_nested(p, "kern", "kern", "score") for p, _ in pairs]
    truths = [_nested(g, "kern", "kern", "score") for _, g in pairs]
    return music.music_error_rates(preds, truths)


def _text_metrics(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, float]:
    metrics = {
        "cer": ocr.text_cer([_plain_text(p) for p, _ in pairs], [_plain_text(g) for _, g in pairs]),
        "wer": ocr.text_wer([_plain_text(p) for p, _ in pairs], [_plain_text(g) for _, g in pairs]),
    }
    if any(_words(g) for _, g in pairs):
        scores = [ocr.word_f1(_words(p), _words(g)) for p, g in pairs]
        matched = sum(s.matched for s in scores)
        predicted = sum(s.predicted for s in scores)
        true = sum(s.true for s in scores)
        precision = matched / predicted if predicted else 0.0
        recall = matched / true if true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        metrics |= {
            "word_precision": 100 * precision,
            "word_recall": 100 * recall,
            "word_f1": 100 * f1,
        }
    return metrics


def _pct(values: list[float]) -> float:
    return 100.0 * fmean(values) if values else 0.0


_METRICS: dict[str, Callable[[list[tuple[dict[str, Any], dict[str, Any]]]], dict[str, float]]] = {
    "table": _table_metrics,
    "molecule": _molecule_metrics,
    "music": _music_metrics,
    "text": _text_metrics,
}


def evaluate(task: EvalTask, predictions: Path, truth: Path) -> EvalReport:
    """Score ``predictions`` against ``truth`` (both JSONL) for ``task``."""
    by_id = dict(_keyed(predictions))
    truths = _keyed(truth)
    if not truths:
        raise InputError("no truth records", source=str(truth))
    pairs = [(by_id.get(key, {}), g) for key, g in truths]
    ids = [key for key, _ in truths]
    missing = sum(1 for p, _ in pairs if not p)
    metrics = _METRICS[task](pairs)
    scored_zero: dict[str, str] = {}
    if task == "table":
        for key, (pred, true) in zip(ids, pairs, strict=True):
            reason = tables.html_oversized(_html(pred), _html(true))
            if reason:
                scored_zero[key] = reason
    return EvalReport(
        task=task,
        count=len(pairs),
        missing=missing,
        metrics=metrics,
        paper={k: v for k, v in PAPER.items() if k in metrics},
        scored_zero=scored_zero,
    )
