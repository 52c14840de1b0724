"""docvlm's engine on a CUDA GPU, as it runs there by default: bf16, FlexAttention
kernels, the decode step captured in a CUDA graph (re-captured when the cache grows,
reused by the next ``generate``), and the compiled step across mixed resolutions and
batch sizes without reaching torch's recompile limit. Skipped without CUDA;
``benchmarks/gpu_check.sh`` runs them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from docvlm import Settings
from docvlm.engines import Generation, Request
from docvlm.engines.fast import PaliGemmaEngine
from docvlm.engines.hf import TransformersEngine, load_model
from docvlm.testing import write_tiny_checkpoint

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


def _requests(budgets: tuple[int, ...] = (40, 7, 25, 3, 60)) -> list[Request]:
    prompts = ["ocr", "table html", "smiles", "kern", "answer en what is the total?"]
    requests = []
    for i, budget in enumerate(budgets):
        image = Image.new("RGB", (224 + 40 * i, 224), (40 * i, 120, 220 - 30 * i))
        ImageDraw.Draw(image).text((10, 10 + 15 * i), f"cell {i}", fill="black")
        requests.append(Request(image, prompts[i % len(prompts)], budget))
    return requests


def _alone(plain: TransformersEngine, requests: list[Request]) -> list[Generation]:
    return [plain.generate([request])[0] for request in requests]


def test_bf16_tokens_equal_generate(tiny_checkpoint: Path) -> None:
    model, processor, device = load_model(str(tiny_checkpoint), Settings(device="cuda"))
    assert model.dtype == torch.bfloat16  # the CUDA default
    plain = TransformersEngine("tiny", model, processor, device, repetition_span=None)
    fast = PaliGemmaEngine(model, processor, "tiny", slots=4, repetition_span=None)
    assert fast.attention == "flex" and fast.cuda_graphs
    requests = _requests()
    for expected, ours in zip(_alone(plain, requests), fast.generate(requests), strict=True):
        assert ours.token_ids == expected.token_ids and ours.stop == expected.stop
        # bf16 logits near the cap (30) are 1/8 apart; both sides round them once
        assert ours.logprobs == pytest.approx(expected.logprobs, abs=0.15)


def test_graph_is_recaptured_when_the_cache_grows_and_reused_after(
    tiny_checkpoint: Path,
) -> None:
    model, processor, _ = load_model(str(tiny_checkpoint), Settings(device="cuda"))
    eager = PaliGemmaEngine(model, processor, "t", slots=2, repetition_span=None, cuda_graphs=False)
    fast = PaliGemmaEngine(model, processor, "t", slots=2, repetition_span=None)
    short = _requests((12, 5, 9))
    first = fast.generate(short)
    graph, state = fast._graph, fast._state
    assert graph is not None and state is not None
    again = fast.generate(short)  # same cache size: the same graph replays
    assert fast._graph is graph and fast._state is state
    assert [g.token_ids for g in again] == [g.token_ids for g in first]
    long = _requests((700, 5, 300))  # 700 new tokens: the cache grows by whole 256s
    grown = fast.generate(long)
    assert fast._graph is not graph and fast._state is not None
    assert fast._state["keys"].shape[3] > state["keys"].shape[3]
    for ours, expected in zip(grown, eager.generate(long), strict=True):
        assert ours.token_ids == expected.token_ids and ours.stop == expected.stop
        assert ours.logprobs == pytest.approx(expected.logprobs, abs=1e-3)
    assert max(g.tokens for g in grown) > 300  # the long answer did use the grown cache


def test_compiled_step_stays_within_the_recompile_limit(
    tiny_checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two resolutions, batches of 1 to 8 and growing caches in one process: each new
    shape compiles once; none falls back to eager for having hit the limit."""
    from torch._dynamo.utils import counters

    wide = write_tiny_checkpoint(tmp_path / "448", resolution=448)
    caplog.set_level(logging.WARNING)
    for checkpoint in (tiny_checkpoint, wide):
        model, processor, device = load_model(str(checkpoint), Settings(device="cuda"))
        plain = TransformersEngine("t", model, processor, device, repetition_span=None)
        fast = PaliGemmaEngine(model, processor, "t", slots=8, repetition_span=None, compile=True)
        for count in (1, 3, 5, 8):
            requests = (_requests() * 2)[:count]
            for ours, expected in zip(
                fast.generate(requests), _alone(plain, requests), strict=True
            ):
                assert ours.token_ids == expected.token_ids
        step = fast._step_fn
        assert step is not None and getattr(step, "__func__", None) is not PaliGemmaEngine._decode
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "recompile_limit" in m or "cache_size_limit" in m]
    assert not [m for m in messages if "running eager" in m]  # the compiled step ran
    assert counters["stats"]["unique_graphs"] > 0
