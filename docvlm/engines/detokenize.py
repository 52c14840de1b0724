"""Where each generated token's text ends in the decoded answer (``Generation.ends``).

The answer is decoded whole (``skip_special_tokens``), so the offsets are measured against
that text. Most tokens decode alone to exactly their part of it (each token's text is
decoded once per engine and kept); when the pieces do not add up (a character spread over
byte tokens, a decoder that joins or strips), the tokens are decoded incrementally, each
against a short window of the ones before it, and a token ends where its first whole
character appears. If even that does not add up to the text, no offsets are given
(``()``): parts then have no confidence rather than a wrong one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["Decode", "TokenEnds"]

Decode = Callable[..., str]


class TokenEnds:
    """Measures ``Generation.ends`` with one tokenizer's ``decode``; an engine keeps one."""

    def __init__(self, decode: Decode) -> None:
        self._decode = decode
        self._pieces: dict[int, str] = {}  # token id -> its text decoded alone

    def __call__(self, ids: Sequence[int], text: str) -> tuple[int, ...]:
        """The character offset in ``text`` where each of ``ids`` ends (see the module)."""
        ends, total = [], 0
        for token in ids:
            piece = self._pieces.get(token)
            if piece is None:
                piece = self._pieces[token] = self._decode([token], skip_special_tokens=True)
            if not text.startswith(piece, total):
                return self._incremental(ids, text)
            total += len(piece)
            ends.append(total)
        return tuple(ends) if total == len(text) else self._incremental(ids, text)

    def _incremental(self, ids: Sequence[int], text: str) -> tuple[int, ...]:
        decode = self._decode
        ends, written, prefix, read = [], 0, 0, 0
        for index in range(len(ids)):
            before = decode(list(ids[prefix:read]), skip_special_tokens=True)
            after = decode(list(ids[prefix : index + 1]), skip_special_tokens=True)
            whole = not after.endswith("\ufffd")
            if len(after) > len(before) and after.startswith(before) and whole:
                written += len(after) - len(before)
                prefix, read = read, index + 1
            ends.append(written)
        return tuple(ends) if written == len(text) else ()
