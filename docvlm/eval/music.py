"""Music metrics on kern, as the Sheet Music Transformer reports them.

- CER: edit distance over characters / characters of the truth;
- SER: edit distance over symbols (kern tokens: fields split on tabs, spaces and lines)
  / symbols of the truth;
- LER: edit distance over whole lines (records) / lines of the truth.
Each is summed over the corpus before dividing and given in percent. Both sides are
normalised first (ekern separators removed, ``**ekern`` headers made ``**kern``), so a
prediction in another encoding of the same score scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

__all__ = ["cer", "ler", "music_error_rates", "ser"]


def _normalise(kern: str) -> str:
    text = kern.replace("\r\n", "\n")
    for token, replacement in (("<b>", "\n"), ("<t>", "\t"), ("<s>", " ")):
        text = text.replace(token, replacement)
    text = text.replace("·", "").replace("@", "")
    for header in ("**ekern_1.0", "**bekern", "**ekern"):
        text = text.replace(header, "**kern")
    return "\n".join(line for line in text.split("\n") if line.strip())


def _units(kern: str, level: str) -> list[str]:
    text = _normalise(kern)
    if level == "char":
        return list(text)
    if level == "line":
        return text.split("\n")
    return text.split()


def _rate(preds: Sequence[str], truths: Sequence[str], level: str) -> float:
    if len(preds) != len(truths):
        raise ValueError(f"{len(preds)} predictions for {len(truths)} truths")
    errors = total = 0
    for pred, true in zip(preds, truths, strict=True):
        p, t = _units(pred, level), _units(true, level)
        errors += Levenshtein.distance(p, t)
        total += len(t)
    return 100.0 * errors / total if total else 0.0


def cer(preds: Sequence[str], truths: Sequence[str]) -> float:
    """Character error rate in percent."""
    return _rate(preds, truths, "char")


def ser(preds: Sequence[str], truths: Sequence[str]) -> float:
    """Symbol error rate in percent."""
    return _rate(preds, truths, "symbol")


def ler(preds: Sequence[str], truths: Sequence[str]) -> float:
    """Line error rate in percent."""
    return _rate(preds, truths, "line")


def music_error_rates(preds: Sequence[str], truths: Sequence[str]) -> dict[str, float]:
    """CER, SER and LER together."""
    return {"cer": cer(preds, truths), "ser": ser(preds, truths), "ler": ler(preds, truths)}
