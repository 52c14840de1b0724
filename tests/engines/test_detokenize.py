"""``token_ends``: where each token's text ends in the decoded answer, checked against the
tokenizer's own decoding of every prefix (transformers), byte-fallback characters included."""

from __future__ import annotations

import pytest

from docvlm.engines.detokenize import TokenEnds

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tokenizer() -> object:
    from docvlm.testing import tiny_processor

    return tiny_processor(224).tokenizer


@pytest.mark.parametrize(
    "text",
    [
        "<loc0010><loc0020><loc0100><loc0300>Hello the world;next\nline",
        "<table><tr><td>1.5 €</td><td>Zürich</td></tr></table>",
        "c1ccccc1(=O)Cl",
        "π ≈ 3.14159 — 数字",
    ],
)
def test_ends_agree_with_decoding_each_prefix(tokenizer: object, text: str) -> None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    ids = [*ids, tokenizer.eos_token_id]  # type: ignore[attr-defined]
    decode = tokenizer.decode  # type: ignore[attr-defined]
    decoded = decode(ids, skip_special_tokens=True)
    assert decoded == text
    ends = TokenEnds(decode)(ids, decoded)
    assert len(ends) == len(ids) and ends[-1] == len(text)
    assert ends[-1] == ends[-2]  # the end-of-sequence token writes nothing
    whole = 0
    for index in range(len(ids)):
        prefix = decode(ids[: index + 1], skip_special_tokens=True)
        if not prefix.endswith("\ufffd"):  # a whole character: the prefix is exact
            whole = len(prefix)
            assert text.startswith(prefix)
        # a byte token that leaves a character unfinished ends where the last one did
        assert ends[index] == whole, (index, prefix)


def test_byte_tokens_take_the_slow_path_and_still_add_up(tokenizer: object) -> None:
    decode = tokenizer.decode  # type: ignore[attr-defined]
    ids = tokenizer("€", add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    assert "".join(decode([i]) for i in ids) != "€"  # three bytes, each undecodable alone
    measure = TokenEnds(decode)
    assert measure(ids, "€") == (0, 0, 1)
    assert measure(ids, "something else") == ()  # never a wrong offset
    assert measure([*ids, *ids], "€€") == (0, 0, 1, 1, 1, 2)  # the kept pieces do not mislead
