"""``docvlm info --check`` and ``auto``'s fallback, on the tiny checkpoint (CPU)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docvlm import Settings
from docvlm.engines import Generation
from docvlm.engines.check import EngineCheck, check_engine, compare, pick_auto
from docvlm.engines.fast import PaliGemmaEngine
from docvlm.engines.hf import TransformersEngine, load_model

torch = pytest.importorskip("torch")
CPU = Settings(device="cpu", dtype="float32")


def _engines(checkpoint: Path) -> tuple[PaliGemmaEngine, TransformersEngine]:
    model, processor, device = load_model(str(checkpoint), CPU)
    fast = PaliGemmaEngine(model, processor, "tiny", slots=2, repetition_span=None)
    return fast, TransformersEngine("tiny", model, processor, device, repetition_span=None)


def test_check_finds_the_engines_equal_and_times_them(tiny_checkpoint: Path) -> None:
    result = check_engine(str(tiny_checkpoint), CPU, tokens=12)
    agreement = result.agreement
    assert agreement.passed and agreement.tokens_equal
    assert agreement.tokens_compared == 24  # two prompts, the whole budget (no EOS)
    assert agreement.max_logprob_gap < 1e-4 < agreement.tolerance
    assert result.prefill_ms_per_image > 0 and result.decode_tokens_per_s > 0
    assert result.generate_prefill_ms_per_image > 0 and result.generate_decode_tokens_per_s > 0
    assert result.auto_engine == "transformers" and "CPU" in result.reason
    assert result.device == "cpu" and result.dtype == "float32"


def test_info_check_prints_the_result(tiny_checkpoint: Path) -> None:
    from docvlm.cli import app

    arguments = ["info", "--check", "-c", str(tiny_checkpoint), "--device", "cpu", "--json"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    check = EngineCheck.model_validate_json(result.stdout)
    assert check.agreement.passed and check.checkpoint == str(tiny_checkpoint)


def test_auto_keeps_transformers_when_the_engine_differs(
    tiny_checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fast, plain = _engines(tiny_checkpoint)
    assert pick_auto(fast, plain) is fast
    text = fast.model.config.text_config
    # the engine scaling scores by head_dim, not query_pre_attn_scalar: a real bug
    fast._geometry = dataclasses.replace(fast._geometry, scaling=text.head_dim**-0.5)
    with caplog.at_level(logging.WARNING, logger="docvlm.engines.check"):
        assert pick_auto(fast, plain) is plain
    (record,) = caplog.records
    assert "using transformers" in record.getMessage()


def test_compare_lets_only_near_ties_differ() -> None:
    def answer(tokens: tuple[int, ...], logprobs: tuple[float, ...]) -> Generation:
        return Generation("", tokens, logprobs, "length")

    same = compare(
        [answer((1, 2, 3), (-0.1, -0.2, -0.3))], [answer((1, 2, 3), (-0.1, -0.2, -0.3005))], 1e-3
    )
    assert same.passed and same.tokens_equal and same.tokens_compared == 3
    tie = compare(
        [answer((1, 2, 3), (-0.1, -0.69, -0.3))], [answer((1, 4, 5), (-0.1, -0.6905, -1))], 1e-3
    )
    assert tie.passed and not tie.tokens_equal and tie.tokens_compared == 1
    wrong = compare([answer((1, 2), (-0.1, -0.2))], [answer((1, 4), (-0.1, -0.9))], 1e-3)
    assert not wrong.passed
    drift = compare([answer((1, 2), (-0.1, -0.2))], [answer((1, 2), (-0.1, -0.25))], 1e-3)
    assert not drift.passed and drift.tokens_equal and drift.max_logprob_gap == pytest.approx(0.05)
    shorter = compare([answer((1, 2), (-0.1, -0.2))], [answer((1,), (-0.1,))], 1e-3)
    assert not shorter.passed  # one stopped where the other went on
    for stop in ("eos", "repetition"):  # the same tokens, ended for another reason
        other = Generation("", (1, 2), (-0.1, -0.2), stop)
        reason = compare([other], [answer((1, 2), (-0.1, -0.2))], 1e-3)
        assert not reason.passed and not reason.tokens_equal and reason.tokens_compared == 2
