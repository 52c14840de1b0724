"""Per-row stopping and logprob recording for transformers' ``generate``.

``generate`` drops a row from the batch once a ``StoppingCriteria`` flags it, so these
two hooks let the transformers engine end each row on its own (EOS, its own token budget,
a runaway loop) and keep one float per step instead of the full-vocabulary scores
(257,216 floats per row and step for PaliGemma 2). Imported only when a model runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

from docvlm.engines.gemma2 import soft_cap
from docvlm.reading.requests import MAX_PERIOD, Stop

__all__ = ["ChosenLogprobs", "RowStops", "cycles"]


def cycles(tail: torch.Tensor, max_period: int = MAX_PERIOD) -> torch.Tensor:
    """Per row of ``tail`` [B, span]: True where the row is one cycle of period
    <= ``max_period`` repeated at least twice (``docvlm.engines.repeats`` on a batch)."""
    found = torch.zeros(tail.shape[0], dtype=torch.bool, device=tail.device)
    for period in range(1, min(max_period, tail.shape[1] // 2) + 1):
        found |= (tail[:, period:] == tail[:, :-period]).all(dim=1)
    return found


class RowStops(StoppingCriteria):  # type: ignore[misc]
    """Stops each row at EOS, at its own budget, or when its last ``span`` tokens loop.

    ``ends[row]`` is the number of answer tokens to keep (EOS excluded), ``reasons[row]``
    why the row stopped; rows still running when ``generate`` returns keep ``None``.
    """

    def __init__(
        self, prompt: int, budgets: Sequence[int], eos: int | None, span: int | None
    ) -> None:
        self.prompt = prompt
        self.budgets = list(budgets)
        self.eos = eos
        self.span = span
        self.ends: list[int | None] = [None] * len(self.budgets)
        self.reasons: list[Stop] = ["length"] * len(self.budgets)

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt
        new = input_ids[:, -1].tolist()
        looping = [False] * len(new)
        if self.span and step >= self.span:
            looping = cycles(input_ids[:, -self.span :]).tolist()
        for row, token in enumerate(new):
            if self.ends[row] is not None:
                continue
            if token == self.eos:
                self.ends[row], self.reasons[row] = step - 1, "eos"
            elif step >= self.budgets[row]:
                self.ends[row], self.reasons[row] = step, "length"
            elif looping[row]:
                self.ends[row], self.reasons[row] = step, "repetition"
        done = [end is not None for end in self.ends]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class ChosenLogprobs(LogitsProcessor):  # type: ignore[misc]
    """Records, per step, the log-probability of the greedy token (the argmax of the
    final scores); placed last, it sees the scores ``generate`` picks from.

    ``cap`` is Gemma 2's final soft-cap when the installed transformers leaves it out
    (``docvlm.engines.gemma2.missing_final_cap``): the token is the same either way, its
    probability is not.
    """

    def __init__(self, cap: float | None = None) -> None:
        self.steps: list[torch.Tensor] = []
        self.cap = cap

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        wide = soft_cap(scores.float(), self.cap)
        self.steps.append(wide.max(dim=-1).values - wide.logsumexp(dim=-1))
        return scores
