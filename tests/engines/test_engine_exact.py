"""Both engines against transformers itself, on the lowest and the newest transformers.

The references here are built from transformers directly, not from docvlm's helpers: a
model loaded with ``from_pretrained`` and eager attention, one teacher-forced forward
pass, and Gemma 2's final soft-cap written out. CI runs this file under the newest and
the lowest transformers that ``pyproject.toml`` allows (``.ci/min-versions``), where
transformers' defaults differ (SDPA without the attention soft-cap, uncapped logits).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from docvlm import Settings
from docvlm.engines import Generation, Request
from docvlm.engines.fast import PaliGemmaEngine
from docvlm.engines.gemma2 import transformers_caps_final_logits
from docvlm.engines.hf import TransformersEngine, load_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _requests(budget: int = 24) -> list[Request]:
    requests = []
    for i in range(5):  # one prompt: the batch needs no padding, so it equals each alone
        image = Image.new("RGB", (224 + 40 * i, 224), (40 * i, 120, 220 - 30 * i))
        ImageDraw.Draw(image).text((10, 10 + 15 * i), f"cell {i}", fill="black")
        requests.append(Request(image, "ocr", budget))
    return requests


def _reference_model(checkpoint: Path) -> Any:
    return transformers.PaliGemmaForConditionalGeneration.from_pretrained(
        checkpoint, attn_implementation="eager", dtype=torch.float32
    ).eval()


def _forward(model: Any, processor: Any, request: Request, answer: list[int]) -> Any:
    """(capped float32 log-softmax after the prompt and each answer token, raw logits,
    the model's own logits), from one teacher-forced forward pass."""
    inputs = processor(
        images=[request.image], text=["<image>" + request.prompt], return_tensors="pt"
    )
    n = inputs["input_ids"].shape[1]
    ids = torch.cat([inputs["input_ids"], torch.tensor([answer], dtype=torch.long)], dim=1)
    types = torch.cat([torch.zeros(1, n), torch.ones(1, len(answer))], dim=1).long()
    arguments = {
        "input_ids": ids,
        "pixel_values": inputs["pixel_values"],
        "token_type_ids": types,  # the prompt bidirectional, the answer causal
        "attention_mask": torch.ones_like(ids),
        "use_cache": False,
    }
    with torch.no_grad():
        hidden = model.model(**arguments).last_hidden_state  # after the final norm
        raw = model.lm_head(hidden)[0, n - 1 :].float()
        own = model(**arguments).logits[0, n - 1 :].float()
    cap = model.config.text_config.final_logit_softcapping
    capped = torch.tanh(raw / cap) * cap  # Gemma 2's definition
    return capped.log_softmax(-1), raw, own


@pytest.fixture(scope="module")
def engines(tiny_checkpoint: Path) -> tuple[TransformersEngine, PaliGemmaEngine]:
    model, processor, device = load_model(str(tiny_checkpoint), Settings(device="cpu"))
    plain = TransformersEngine("tiny", model, processor, device, repetition_span=None)
    fast = PaliGemmaEngine(model, processor, "tiny", slots=3, repetition_span=None)
    return plain, fast


def test_the_cap_probe_tells_what_this_transformers_does(tiny_checkpoint: Path) -> None:
    reference = _reference_model(tiny_checkpoint)
    _, processor, _ = load_model(str(tiny_checkpoint), Settings(device="cpu"))
    _, raw, own = _forward(reference, processor, _requests()[0], [5, 6, 7])
    cap = reference.config.text_config.final_logit_softcapping
    capped = torch.tanh(raw / cap) * cap
    assert float((capped - raw).abs().max()) > 1.0  # the cap changes these logits
    expected = capped if transformers_caps_final_logits() else raw
    torch.testing.assert_close(own, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("engine", ["transformers", "docvlm"])
def test_logprobs_equal_a_teacher_forced_forward_pass(
    engines: tuple[TransformersEngine, PaliGemmaEngine], tiny_checkpoint: Path, engine: str
) -> None:
    """Each token's log-probability is the capped log-softmax of one forward pass over
    the prompt and the tokens before it, and each token is its argmax."""
    plain, fast = engines
    reference = _reference_model(tiny_checkpoint)
    requests = _requests()[:3]
    generations = (plain if engine == "transformers" else fast).generate(requests)
    for request, generation in zip(requests, generations, strict=True):
        answer = list(generation.token_ids)
        assert len(set(answer)) > 5  # varied text: equal values say something
        logprobs, _, _ = _forward(reference, plain.processor, request, answer)
        chosen = [float(logprobs[i, token]) for i, token in enumerate(answer)]
        assert generation.logprobs == pytest.approx(chosen, abs=5e-5)
        assert logprobs[: len(answer)].argmax(-1).tolist() == answer


def _eos_model(tiny_checkpoint: Path, plain: TransformersEngine) -> tuple[Any, int, int]:
    """The tiny model with EOS taking over a token that one request writes early and no
    other writes at all: (model, the row that ends on EOS, the token count before it)."""
    outputs = [g.token_ids for g in plain.generate(_requests())]
    for row, tokens in enumerate(outputs):
        others = {t for i, ids in enumerate(outputs) if i != row for t in ids}
        for position, token in enumerate(tokens):
            if 2 <= position <= 10 and token not in others and token not in tokens[:position]:
                model, _, _ = load_model(str(tiny_checkpoint), Settings(device="cpu"))
                with torch.no_grad():
                    weight = model.lm_head.weight
                    weight[plain.model.generation_config.eos_token_id] = weight[token] * 1.2
                return model, row, position
    raise AssertionError("no token fits; the tiny checkpoint changed")


def test_a_row_ending_on_eos_leaves_the_others_running(
    engines: tuple[TransformersEngine, PaliGemmaEngine], tiny_checkpoint: Path
) -> None:
    plain, _ = engines
    model, row, ends_at = _eos_model(tiny_checkpoint, plain)
    eos = int(plain.processor.tokenizer.eos_token_id)
    requests = _requests()
    batched = TransformersEngine("eos", model, plain.processor, "cpu", repetition_span=None)
    fast = PaliGemmaEngine(model, plain.processor, "eos", slots=3, repetition_span=None)
    ours, theirs = fast.generate(requests), batched.generate(requests)
    for index, request in enumerate(requests):
        inputs = plain.processor(
            images=[request.image], text=["<image>" + request.prompt], return_tensors="pt"
        )
        with torch.inference_mode():  # plain generate, this request alone
            out = model.generate(**inputs, max_new_tokens=request.max_new_tokens, do_sample=False)
        alone = out[0, inputs["input_ids"].shape[1] :].tolist()
        # transformers' text: the whole answer decoded, EOS dropped as a special token
        text = plain.processor.decode(alone, skip_special_tokens=True)
        stop = "eos" if eos in alone else "length"
        alone = alone[: alone.index(eos)] if eos in alone else alone
        for generation in (ours[index], theirs[index]):
            _check(generation, alone, stop, eos)
            assert generation.text == text
        assert len(set(text)) > 5  # varied text: equal strings say something
    assert ours[row].stop == "eos" and ours[row].tokens == ends_at
    longer = [g for g in ours if g.stop == "length"]
    assert longer and all(g.tokens == 24 for g in longer)  # the others ran to their budget


def _check(generation: Generation, alone: list[int], stop: str, eos: int) -> None:
    assert list(generation.token_ids) == alone
    assert generation.stop == stop and eos not in generation.token_ids
    assert len(generation.logprobs) == generation.tokens
