"""OCR metrics: word detection F1 (HierText protocol) and CER/WER for plain text.

Word F1: a predicted word matches a true word when their boxes overlap with IoU >= 0.5
and the texts are equal; matching is one-to-one, greedy by IoU (largest first).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict
from rapidfuzz.distance import Levenshtein

from parsers import Box

__all__ = ["OcrScore", "Word", "text_cer", "text_wer", "word_f1"]


class Word(BaseModel):
    """A word and its box, for the detection protocol."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    text: str
    box: Box


class OcrScore(BaseModel):
    """Precision, recall and F1 of word detection, with the counts behind them."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    precision: float
    recall: float
    f1: float
    matched: int
    predicted: int
    true: int


def word_f1(preds: Sequence[Word], truths: Sequence[Word], iou: float = 0.5) -> OcrScore:
    """Word precision/recall/F1: IoU >= ``iou`` and exact text, one-to-one."""
    candidates = sorted(
        (
            (p.box.iou(t.box), i, j)
            for i, p in enumerate(preds)
            for j, t in enumerate(truths)
            if p.text == t.text
        ),
        reverse=True,
    )
    used_p: set[int] = set()
    used_t: set[int] = set()
    for overlap, i, j in candidates:
        if overlap < iou:
            break
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
    matched = len(used_p)
    precision = matched / len(preds) if preds else 1.0 if not truths else 0.0
    recall = matched / len(truths) if truths else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return OcrScore(
        precision=precision,
        recall=recall,
        f1=f1,
        matched=matched,
        predicted=len(preds),
        true=len(truths),
    )


def text_cer(preds: Sequence[str], truths: Sequence[str]) -> float:
    """Character error rate (percent), summed over the corpus."""
    errors = sum(Levenshtein.distance(p, t) for p, t in zip(preds, truths, strict=True))
    total = sum(len(t) for t in truths)
    return 100.0 * errors / total if total else 0.0


def text_wer(preds: Sequence[str], truths: Sequence[str]) -> float:
    """Word error rate (percent), words split on whitespace."""
    errors = sum(
        Levenshtein.distance(p.split(), t.split()) for p, t in zip(preds, truths, strict=True)
    )
    total = sum(len(t.split()) for t in truths)
    return 100.0 * errors / total if total else 0.0
