"""The repetition guard and the token budget, in both engines, against transformers.

The guard stops a sequence whose last ``span`` tokens are one cycle of at most
``MAX_PERIOD`` tokens. Here the tiny checkpoint is made to loop with a chosen period: its
attention and MLP outputs are zeroed, so each position's final hidden state is its own
token's embedding (normalised), a few embeddings are set to orthogonal directions, and the
output head alone then says which token follows which. transformers' own ``generate``
(no guard) is the reference for the tokens and the text; the transformers engine is the
reference for the stop reason where the guard and the budget meet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from docvlm import Settings
from docvlm.engines import Engine, Request, repeats
from docvlm.engines.check import compare
from docvlm.engines.fast import PaliGemmaEngine
from docvlm.engines.hf import TransformersEngine, load_model
from docvlm.reading.requests import MAX_PERIOD

torch = pytest.importorskip("torch")

SPAN = 2 * MAX_PERIOD  # the guard's span here: the longest cycle fits twice, no more
#: ordinary words of the tiny vocabulary, one per token: a loop's text reads as words
WORDS = ("ocr", "caption", "detect", "answer", "table", "molecule", "music", "text", "figure")


def _ids(processor: Any, pieces: list[str]) -> list[int]:
    ids: list[int] = processor.tokenizer.convert_tokens_to_ids(pieces)
    assert processor.tokenizer.unk_token_id not in ids
    return ids


@pytest.fixture(scope="module")
def looping(tiny_checkpoint: Path) -> tuple[Any, Any]:
    """The tiny model (its own copy) with every layer's output zeroed and the embeddings of
    ``WORDS`` and of the prompt's last token (``\\n``) set to orthogonal directions."""
    model, processor, _ = load_model(str(tiny_checkpoint), Settings(device="cpu"))
    language = model.model.language_model
    with torch.no_grad():
        for layer in language.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        for axis, token in enumerate(_ids(processor, [*WORDS, "\n"])):
            language.embed_tokens.weight[token] = 0.0
            language.embed_tokens.weight[token, axis] = 5.0
    return model, processor


def _loop(model: Any, processor: Any, period: int) -> list[int]:
    """Rewire the output head so that ``\\n`` -> WORDS[0] -> ... -> WORDS[period - 1] ->
    WORDS[0]: each source's hidden state scores its successor 20, every other token 0."""
    language = model.model.language_model
    cycle = _ids(processor, list(WORDS[:period]))
    (newline,) = _ids(processor, ["\n"])
    with torch.no_grad():
        model.lm_head.weight.zero_()
        for source, target in [
            (newline, cycle[0]),
            *zip(cycle, cycle[1:] + cycle[:1], strict=False),
        ]:
            hidden = language.norm(language.embed_tokens(torch.tensor([source])))[0]
            model.lm_head.weight[target] += 20 * hidden / hidden.dot(hidden)
    return cycle


def _request(budget: int) -> Request:
    image = Image.new("RGB", (224, 224), (200, 120, 40))
    ImageDraw.Draw(image).text((10, 10), "a loop", fill="black")
    return Request(image, "ocr", budget)


def _generate(model: Any, processor: Any, request: Request) -> list[int]:
    """transformers' own greedy ``generate`` (no guard): the answer's token ids."""
    inputs = processor(
        images=[request.image], text=["<image>" + request.prompt], return_tensors="pt"
    )
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=request.max_new_tokens, do_sample=False)
    answer: list[int] = out[0, inputs["input_ids"].shape[1] :].tolist()
    return answer


def _engines(model: Any, processor: Any, span: int | None, sync: int = 5) -> list[Engine]:
    plain = TransformersEngine("loop", model, processor, "cpu", repetition_span=span)
    fast = PaliGemmaEngine(model, processor, "loop", slots=2, repetition_span=span, sync_every=sync)
    return [plain, fast]


@pytest.mark.parametrize("span", range(2, 3 * MAX_PERIOD))
def test_the_guard_finds_every_period_up_to_the_limit(span: int) -> None:
    """Both implementations (``repeats`` for docvlm's engine, ``cycles`` on a batch for
    transformers'): a cycle of every period up to ``min(MAX_PERIOD, span // 2)`` filling
    the last ``span`` tokens is found, one token earlier it is not, a longer one never."""
    from docvlm.engines.stopping import cycles

    limit = min(MAX_PERIOD, span // 2)
    periods = range(1, 2 * MAX_PERIOD + 2)
    tails = [[100 + i % period for i in range(span)] for period in periods]
    expected = [period <= limit for period in periods]
    found = [repeats([7, 8, 9, *tail], span) for tail in tails]
    assert found == expected
    assert cycles(torch.tensor(tails)).tolist() == expected
    assert not any(repeats([7, 8, 9, *tail][:-1], span) for tail in tails)
    assert not any(cycles(torch.tensor([[9, *tail[:-1]] for tail in tails])).tolist())


def test_both_engines_stop_a_loop_of_every_period_up_to_the_limit(
    looping: tuple[Any, Any],
) -> None:
    model, processor = looping
    budget = SPAN + 8
    for period in range(1, MAX_PERIOD + 2):
        cycle = _loop(model, processor, period)
        written = _generate(model, processor, _request(budget))
        assert written == [cycle[i % period] for i in range(budget)]  # the model loops
        stops = period <= MAX_PERIOD
        expected = written[:SPAN] if stops else written
        for engine in _engines(model, processor, SPAN):
            (generation,) = engine.generate([_request(budget)])
            assert list(generation.token_ids) == expected, (period, type(engine).__name__)
            assert generation.stop == ("repetition" if stops else "length")
            assert generation.text == processor.decode(expected, skip_special_tokens=True)
            assert generation.text.startswith("".join(WORDS[:period]))


def test_a_loop_closing_on_the_budgets_last_token_stops_for_length(
    looping: tuple[Any, Any],
) -> None:
    """The guard and the budget agree on the stop reason: a loop that closes on the
    budget's last token ends for ``length``, as in the transformers engine."""
    model, processor = looping
    cycle = _loop(model, processor, 3)
    requests = [_request(budget) for budget in (SPAN - 1, SPAN, SPAN + 1)]
    written = _generate(model, processor, requests[-1])
    assert written[:SPAN] == [cycle[i % 3] for i in range(SPAN)]
    plain, _ = _engines(model, processor, SPAN)
    reference = plain.generate(requests)  # one batch, each row its own budget
    assert [g.stop for g in reference] == ["length", "length", "repetition"]
    for sync in (1, 8):  # the host checks every token, or once the budget is reached
        _, fast = _engines(model, processor, SPAN, sync)
        for request, ours, theirs in zip(requests, fast.generate(requests), reference, strict=True):
            assert list(theirs.token_ids) == written[: min(request.max_new_tokens, SPAN)]
            assert ours.token_ids == theirs.token_ids and ours.stop == theirs.stop, sync
            assert ours.text == theirs.text == processor.decode(list(theirs.token_ids))


def test_the_check_fails_when_only_the_stop_reason_differs(looping: tuple[Any, Any]) -> None:
    """``docvlm info --check`` (``compare``): equal tokens, but one engine's guard stopped
    the loop where the other ran to its budget."""
    model, processor = looping
    _loop(model, processor, 2)
    _, guarded = _engines(model, processor, SPAN)
    plain, _ = _engines(model, processor, None)
    ours = guarded.generate([_request(SPAN + 8)])
    theirs = plain.generate([_request(SPAN)])
    assert ours[0].token_ids == theirs[0].token_ids
    assert (ours[0].stop, theirs[0].stop) == ("repetition", "length")
    agreement = compare(ours, theirs, tolerance=2e-3)
    assert agreement.tokens_compared == SPAN and agreement.max_logprob_gap < 1e-4
    assert not agreement.tokens_equal and not agreement.passed
