"""Where each generated token's text ends in the decoded answer (``Generation.ends``).

The answer is decoded whole (``skip_special_tokens``), so the offsets are measured against
that text. Most tokens decode alone to exactly their part of it; when the pieces do not
add up (a character spread over byte tokens, a decoder that joins or strips), the tokens
are decoded incrementally, each against a short window of the ones before it, and a
token ends where its first whole character appears. If even that does not add up to the
text, no offsets are given (``()``): parts then have no confidence rather than a wrong one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["token_ends"]

Decode = Callable[..., str]


def token_ends(decode: Decode, ids: Sequence[int], text: str) -> tuple[int, ...]:
    """The character offset in ``text`` where each of ``ids`` ends (see the module)."""
    pieces = [decode([token], skip_special_tokens=True) for token in ids]
    if "".join(pieces) == text:
        ends, total = [], 0
        for piece in pieces:
            total += len(piece)
            ends.append(total)
        return tuple(ends)
    ends, written, prefix, read = [], 0, 0, 0
    for index in range(len(ids)):
        before = decode(list(ids[prefix:read]), skip_special_tokens=True)
        after = decode(list(ids[prefix : index + 1]), skip_special_tokens=True)
        if len(after) > len(before) and after.startswith(before) and not after.endswith("\ufffd"):
            written += len(after) - len(before)
            prefix, read = read, index + 1
        ends.append(written)
    return tuple(ends) if written == len(text) else ()
