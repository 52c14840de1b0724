"""The CPU configuration: feature detection, the plan, its layers, loading, `docvlm info`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from docvlm import Settings
from docvlm.engines.cpu import CpuFeatures, cpu_features, cpu_plan

torch = pytest.importorskip("torch")

BF16 = CpuFeatures("Zen 4", "AVX512", avx512_bf16=True, amx_bf16=False, cores=2)
NO_BF16 = CpuFeatures("Haswell", "AVX2", avx512_bf16=False, amx_bf16=False, cores=4)
native_bf16 = pytest.mark.skipif(
    not cpu_features().native_bf16, reason="this CPU has no native bf16 (oneDNN emulates it)"
)


def test_features_come_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
        "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    )
    features = cpu_features(info)
    assert features.name == "Intel(R) Xeon(R) Platinum 8480+"
    assert features.avx512_bf16 and features.amx_bf16 and features.native_bf16
    info.write_text("model name\t: AMD EPYC 7R13\nflags\t\t: fpu avx2 fma\n")
    plain = cpu_features.__wrapped__(info)
    assert not plain.native_bf16 and plain.capability == str(
        torch.backends.cpu.get_cpu_capability()
    )


def test_plan_picks_bf16_only_with_native_support() -> None:
    threads = torch.get_num_threads()
    chosen = cpu_plan(Settings(device="cpu"), BF16)
    assert (chosen.dtype, chosen.quantization, chosen.packed) == ("bfloat16", "none", True)
    assert chosen.threads == threads
    fallback = cpu_plan(Settings(device="cpu"), NO_BF16)
    assert (fallback.dtype, fallback.packed) == ("float32", False)
    # every choice stays overridable
    assert cpu_plan(Settings(device="cpu", dtype="float32"), BF16).packed is False
    int8 = cpu_plan(Settings(device="cpu", quantization="int8", cpu_threads=1), BF16)
    assert (int8.quantization, int8.threads, int8.dtype) == ("int8", 1, "bfloat16")


@native_bf16
def test_packed_linear_equals_torch_linear_bit_for_bit() -> None:
    from docvlm.engines.linear import PackedLinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 160).to(torch.bfloat16)
    packed = PackedLinear(linear)
    for shape in ((1, 1, 96), (2, 37, 96)):  # a decode step and a prefill
        x = torch.randn(shape, dtype=torch.bfloat16)
        assert torch.equal(packed(x), linear(x))


def test_int8_linear_is_the_dequantized_weight_on_both_paths() -> None:
    from docvlm.engines.linear import INT8_KERNEL_ROWS, Int8Linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(128, 64, bias=False)
    quantized = Int8Linear(linear, torch.bfloat16)
    scale = linear.weight.abs().amax(dim=1) / 127
    assert torch.equal(quantized.weight_int8, torch.round(linear.weight / scale[:, None]).char())
    dequantized = quantized.weight_int8.float() * quantized.scale.float()[:, None]
    for rows in (1, INT8_KERNEL_ROWS + 5):  # the int8 kernel, then the dequantized matmul
        x = torch.randn(1, rows, 128)
        reference = x @ dequantized.T
        out = quantized(x).float()
        assert out.shape == (1, rows, 64)
        assert torch.allclose(out, reference, atol=0.05, rtol=0.02)
        assert torch.allclose(out, linear(x), atol=0.1, rtol=0.05)  # close to fp32


@pytest.mark.parametrize("quantization", ["none", "int8"])
def test_loading_for_the_cpu_applies_the_plan(tiny_checkpoint: Path, quantization: str) -> None:
    from docvlm.engines import Request
    from docvlm.engines.hf import TransformersEngine, load_for_inference, load_model
    from docvlm.engines.linear import Int8Linear, PackedLinear

    settings = Settings(device="cpu", quantization=quantization, cpu_threads=1)  # type: ignore[arg-type]
    plan = cpu_plan(settings)
    previous = torch.get_num_threads()
    try:
        model, processor, device = load_for_inference(str(tiny_checkpoint), settings)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
    assert str(model.dtype) == f"torch.{plan.dtype}"
    kinds = {type(m) for m in model.modules()}
    assert (Int8Linear in kinds) == (quantization == "int8")
    assert (PackedLinear in kinds) == plan.packed
    # reading gives nearly the fp32 answer: the same first token, a close logprob
    reference, _, _ = load_model(str(tiny_checkpoint), Settings(device="cpu"))
    assert reference.dtype == torch.float32  # load_model itself (fine-tuning) stays fp32
    assert torch.nn.Linear in {type(m) for m in reference.modules()}
    request = [Request(Image.new("RGB", (224, 224), (200, 60, 40)), "ocr", 3)]
    ours = TransformersEngine("t", model, processor, device).generate(request)[0]
    fp32 = TransformersEngine("t", reference, processor, device).generate(request)[0]
    assert ours.token_ids[0] == fp32.token_ids[0]
    assert ours.logprobs[0] == pytest.approx(fp32.logprobs[0], abs=0.15)


def test_info_prints_the_resolved_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from docvlm.cli import app

    monkeypatch.setenv("DOCVLM_QUANTIZATION", "int8")
    monkeypatch.setenv("DOCVLM_CPU_THREADS", "1")
    result = CliRunner().invoke(app, ["info", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    plan = cpu_plan(Settings(device="cpu", quantization="int8", cpu_threads=1))
    assert info["device"] == "cpu" and info["engine"] == "transformers"
    assert (info["dtype"], info["quantization"], info["threads"]) == (plan.dtype, "int8", 1)
    assert info["avx512_bf16"] == cpu_features().avx512_bf16
    text = CliRunner().invoke(app, ["info", "--device", "cpu"])
    assert "threads: 1" in text.stdout and "engine: transformers" in text.stdout
    assert CliRunner().invoke(app, ["info", "--device", "tpu"]).exit_code != 0
