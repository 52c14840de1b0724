"""Confidence: how sure the model was of each part it wrote, from its own tokens.

A token's probability is ``p = exp(logprob)``, the probability the model gave the token
it chose. A part of an answer (a line, a table cell; a molecule or a score is the whole
answer) is scored by the tokens that wrote it::

    confidence(part) = exp(mean(logprob of its tokens))   # geometric mean of p

The geometric mean is the inverse of the part's per-token perplexity: it does not fall
just because a part is long (a product of probabilities would), and one unsure token in
a short part (a digit in a cell) still pulls it down. A result's ``confidence`` is the
same mean over every token of its answer, end-of-sequence included. A page is as good as
its weakest part: ``Page.confidence`` is the minimum over its results' weakest parts
(results a person corrected left out: their values are no longer the model's).

Tokens are attributed to parts by character offsets: ``Generation.ends`` says where each
token's text ends in the decoded answer; the parser reports the span of characters each
part came from (``parsers.SpanScore``); a token belongs to every part its characters
overlap. A token that writes no character (the half of a character split over byte
tokens) belongs with the next token that does; the end-of-sequence token belongs to no
part. Without log-probabilities (an engine that gives none, a record written before) a
confidence is None, never a guess.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

from docvlm.reading.requests import Generation
from docvlm.results import Page, Result

__all__ = ["TokenSpans", "geometric_mean", "page_confidence", "result_confidence"]


def geometric_mean(logprobs: Iterable[float]) -> float | None:
    """``exp(mean(logprobs))``: the geometric mean of the probabilities (None if empty)."""
    values = list(logprobs)
    return math.exp(sum(values) / len(values)) if values else None


class TokenSpans:
    """The characters each token of a generation wrote, to score spans of its text."""

    def __init__(self, generation: Generation) -> None:
        self._logprobs = generation.logprobs
        ends = list(generation.ends)
        # a zero-width token is scored with the next token that writes something
        self._starts: list[int] = []
        self._ends: list[int] = []
        previous = 0
        for end in ends:
            self._starts.append(previous)
            previous = max(previous, end)
            self._ends.append(previous)
        following = previous
        for index in range(len(ends) - 1, -1, -1):
            if self._ends[index] == self._starts[index]:
                self._ends[index] = following
            else:
                following = self._ends[index]
        self.usable = bool(ends) and len(ends) == len(self._logprobs)

    def score(self, start: int, end: int) -> float | None:
        """Geometric mean probability of the tokens overlapping ``start:end`` (None when
        the engine gave no offsets or log-probabilities, or no token wrote there)."""
        if not self.usable or end <= start:
            return None
        chosen: list[float] = []
        # tokens are in text order: from the first that ends after start, to end
        for index in range(bisect.bisect_right(self._ends, start), len(self._ends)):
            if self._starts[index] >= end:
                break
            if self._ends[index] > self._starts[index]:
                chosen.append(self._logprobs[index])
        return geometric_mean(chosen)


def result_confidence(result: Result) -> float | None:
    """A result's weakest part: the lowest line or cell confidence of a text or table
    result, else (a molecule, a score, a caption, or parts without one) the result's
    own confidence over its whole answer; None without log-probabilities."""
    return result.weakest_confidence()


def page_confidence(page: Page) -> float | None:
    """The weakest part of the page's results, those a person corrected left out (None
    when none has a confidence): ``Page.confidence``."""
    return page.confidence
