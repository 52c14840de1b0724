"""The engine's slot state: device buffers a decode step updates without the host, and
the host's periodic read of them.

Per slot the device keeps the input token, the cache length, whether it is active, how
many tokens it recorded, its budget and stop code, and the recorded tokens and
log-probabilities. ``advance`` applies one greedy step's outcome with tensor ops only (so
it runs inside a captured CUDA graph); ``collect`` copies what was recorded since the last
read to the host, applies the repetition guard there and says which slots finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from docvlm.engines.detokenize import Decode, TokenEnds
from docvlm.reading.requests import Generation, Stop, repeats

if TYPE_CHECKING:
    import torch

__all__ = ["Running", "State", "advance", "allocate", "collect"]

State = dict[str, "torch.Tensor"]
EOS, LENGTH = 1, 2  # codes in the "stop" buffer


@dataclass
class Running:
    """A request in a slot, as the host knows it."""

    index: int  # position in the caller's request list
    budget: int
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    stop: Stop | None = None

    def result(self, decode: Decode, measure: TokenEnds) -> Generation:
        text = decode(self.tokens, skip_special_tokens=True)
        return Generation(
            text=text,
            token_ids=tuple(self.tokens),
            logprobs=tuple(self.logprobs),
            stop=self.stop or "length",
            ends=measure(self.tokens, text),
        )


def allocate(
    cache: tuple[int, int, int, int, int],
    vocabulary: int,
    dtype: torch.dtype,
    device: torch.device,
    eos: int,
) -> State:
    """Buffers for ``cache = (layers, slots, kv_heads, capacity, head_dim)``, all idle."""
    import torch

    slots, capacity = cache[1], cache[3]

    def zeros(*size: int, kind: torch.dtype = torch.long) -> torch.Tensor:
        return torch.zeros(size, dtype=kind, device=device)

    return {
        "keys": zeros(*cache, kind=dtype),
        "values": zeros(*cache, kind=dtype),
        "rows": torch.arange(slots, device=device),
        "tokens": zeros(slots),
        "lengths": zeros(slots),  # cache index of the input token
        "count": zeros(slots),
        "budget": zeros(slots),
        "stop": zeros(slots),
        "active": zeros(slots, kind=torch.bool),
        "eos": torch.tensor(eos, device=device),
        "out_tokens": zeros(slots, capacity),
        "out_logprobs": zeros(slots, capacity, kind=torch.float32),
        "logits": zeros(slots, vocabulary, kind=torch.float32),
    }


def advance(s: State, rows: torch.Tensor, logits: torch.Tensor) -> None:
    """The greedy token of ``logits`` [rows, vocabulary] for slots ``rows``: record it,
    stop on EOS (not recorded) or on the budget; a stopped slot goes idle (length 0, so
    the next steps read one key for it)."""
    import torch

    s["logits"][rows] = logits
    logprobs = torch.log_softmax(logits, dim=-1)
    best = torch.argmax(logprobs, dim=-1)
    chosen = logprobs.gather(1, best.unsqueeze(1))[:, 0]
    active, count = s["active"][rows], s["count"][rows]
    eos = best == s["eos"]
    record = active & ~eos
    column = torch.clamp(count, max=s["out_tokens"].shape[1] - 1)
    s["out_tokens"][rows, column] = torch.where(record, best, s["out_tokens"][rows, column])
    s["out_logprobs"][rows, column] = torch.where(record, chosen, s["out_logprobs"][rows, column])
    count = count + record.long()
    full = record & (count >= s["budget"][rows])
    s["stop"][rows] = torch.where(active & eos, EOS, torch.where(full, LENGTH, s["stop"][rows]))
    active = active & ~(eos | full)
    s["count"][rows] = count
    s["active"][rows] = active
    s["tokens"][rows] = best
    s["lengths"][rows] = torch.where(active, s["lengths"][rows], 0)


def collect(
    s: State, occupied: dict[int, Running], lengths: list[int], span: int | None
) -> dict[int, Running]:
    """Copy the tokens recorded since the last call into ``occupied`` and refresh the
    host's ``lengths``; return the slots that finished.

    With ``span``, a sequence whose last ``span`` tokens loop is cut right after the token
    that closed the loop (as if checked every step) and its slot freed on the device.
    """
    if not occupied:
        return {}
    active, count = s["active"].tolist(), s["count"].tolist()
    stops, cache = s["stop"].tolist(), s["lengths"].tolist()
    start = min(len(running.tokens) for running in occupied.values())
    end = max(count[slot] for slot in occupied)
    tokens = s["out_tokens"][:, start:end].tolist()
    logprobs = s["out_logprobs"][:, start:end].tolist()
    finished: dict[int, Running] = {}
    for slot, running in occupied.items():
        lengths[slot] = cache[slot]
        for column in range(len(running.tokens) - start, count[slot] - start):
            running.tokens.append(tokens[slot][column])
            running.logprobs.append(logprobs[slot][column])
            # the budget wins over the guard on the budget's last token, as per step
            within = len(running.tokens) < running.budget
            if span and within and repeats(running.tokens, span):
                running.stop = "repetition"
                break
        if running.stop is None and not active[slot]:
            running.stop = "eos" if stops[slot] == EOS else "length"
        if running.stop is not None:
            finished[slot] = running
            if active[slot]:  # stopped by the host: idle on the device too
                s["active"][slot] = False
                s["lengths"][slot] = 0
    return finished
