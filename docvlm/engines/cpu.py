"""Running on the CPU: what the processor can do, and the configuration docvlm picks.

Measured on a 2-core AMD EPYC (Zen 4, AVX-512 BF16, no AMX) with the random-weight
PaliGemma 2 3B (``benchmarks/cpu.py``, figures in docs/engine.md):

- bf16 is chosen only where oneDNN has a hardware bf16 path (AMX or AVX-512 BF16);
  elsewhere ``dtype="auto"`` stays fp32 (such a CPU was not at hand to measure).
- bf16 layers are 2.5 to 5x faster than fp32 on one 3B-sized layer; prepacking each
  weight once for oneDNN (``PackedLinear``) adds 7 to 15%, with the same numbers.
- int8 weight-only (``Int8Linear``, opt-in with ``quantization="int8"``) halves the
  bytes again for decoding; prefill runs on weights dequantized to bf16 per call.

``cpu_plan`` turns Settings into a ``CpuPlan``; ``docvlm.engines.linear.apply_plan`` swaps
the model's linear layers in place. This module imports torch only when asked.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from docvlm.settings import Settings

__all__ = ["CpuFeatures", "CpuPlan", "cpu_features", "cpu_plan"]

Quantization = Literal["none", "int8"]


@dataclass(frozen=True)
class CpuFeatures:
    """What this processor offers: torch's SIMD level and the bf16 matrix paths."""

    name: str  # "model name" in /proc/cpuinfo
    capability: str  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...
    avx512_bf16: bool
    amx_bf16: bool
    cores: int

    @property
    def native_bf16(self) -> bool:
        """True when oneDNN has a hardware bf16 path (AMX tiles or AVX-512 BF16)."""
        return self.amx_bf16 or self.avx512_bf16


def _field(cpuinfo: str, *names: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith(names):
            return line.partition(":")[2].strip()
    return ""


@lru_cache(maxsize=1)
def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuFeatures:
    """Read once: torch's capability and the bf16 flags of ``/proc/cpuinfo``."""
    import torch

    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: rely on what torch says
        text = ""
    flags = set(_field(text, "flags", "Features").split())
    name = _field(text, "model name") or platform.machine()
    capability = str(torch.backends.cpu.get_cpu_capability())
    avx512_bf16 = "avx512_bf16" in flags
    amx = "amx_bf16" in flags
    if not flags and capability.startswith("AVX512"):
        # torch reports AVX512_BF16 / AMX via mkldnn's own check when flags are unknown
        avx512_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return CpuFeatures(name, capability, avx512_bf16, amx, os.cpu_count() or 1)


@dataclass(frozen=True)
class CpuPlan:
    """How a model runs on the CPU."""

    dtype: Literal["float32", "bfloat16", "float16"]
    quantization: Quantization
    threads: int
    packed: bool  # bf16 linear weights prepacked for oneDNN

    def describe(self) -> str:
        weights = "int8 weight-only" if self.quantization == "int8" else self.dtype
        packing = ", oneDNN-prepacked" if self.packed else ""
        return f"{weights}{packing}, {self.threads} threads"


def cpu_plan(settings: Settings, features: CpuFeatures | None = None) -> CpuPlan:
    """The configuration ``settings`` asks for on this CPU (``auto`` resolved)."""
    import torch

    features = features or cpu_features()
    dtype = settings.dtype
    if dtype == "auto":
        dtype = "bfloat16" if features.native_bf16 else "float32"
    quantization: Quantization = "int8" if settings.quantization == "int8" else "none"
    threads = settings.cpu_threads or torch.get_num_threads()
    packed = dtype == "bfloat16" and features.native_bf16
    return CpuPlan(dtype, quantization, threads, packed)
