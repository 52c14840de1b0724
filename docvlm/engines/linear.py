"""CPU linear layers: oneDNN-prepacked bf16 and int8 weight-only, swapped in place.

Prepacking a bf16 weight once for oneDNN gives the same numbers (bit for bit) 7 to 15%
faster than a plain bf16 ``nn.Linear`` (``benchmarks/cpu.py --layer``). int8
weight-only (per output channel, a symmetric scale) halves the bytes a decode step reads
once more. See ``docvlm.engines.cpu``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from docvlm.engines.cpu import CpuPlan

__all__ = ["INT8_KERNEL_ROWS", "Int8Linear", "PackedLinear", "apply_plan"]

#: Rows (tokens) up to which an int8 layer runs the int8 kernel; longer inputs (prefill)
#: multiply bf16 weights dequantized per call, where the int8 kernel is several times slower.
INT8_KERNEL_ROWS = 32


class PackedLinear(nn.Module):
    """``nn.Linear`` with its weight prepacked once for oneDNN (bf16 on the CPU)."""

    def __init__(self, source: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = source.in_features, source.out_features
        self.packed = torch.ops.mkldnn._reorder_linear_weight(source.weight.detach(), None)
        self.bias = None if source.bias is None else source.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x, self.packed, self.bias, "none", [None], ""
        )
        return out


class Int8Linear(nn.Module):
    """``nn.Linear`` with int8 weights and one ``dtype`` scale per output channel."""

    def __init__(self, source: nn.Linear, dtype: torch.dtype) -> None:
        super().__init__()
        self.in_features, self.out_features = source.in_features, source.out_features
        weight = source.weight.detach()
        self.weight_int8 = torch.empty(weight.shape, dtype=torch.int8)
        scale = torch.empty(weight.shape[0], dtype=torch.float32)
        for start in range(0, weight.shape[0], 8192):  # bounded fp32 transient (lm_head)
            rows = weight[start : start + 8192].float()
            part = rows.abs().amax(dim=1).clamp(min=1e-12) / 127.0
            self.weight_int8[start : start + 8192] = torch.round(rows / part[:, None])
            scale[start : start + 8192] = part
        self.scale = scale.to(dtype)
        self.bias = None if source.bias is None else source.bias.detach().to(dtype).clone()
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        rows = x.numel() // x.shape[-1]
        if rows <= INT8_KERNEL_ROWS:
            flat = x.reshape(rows, x.shape[-1])
            out: torch.Tensor = torch.ops.aten._weight_int8pack_mm(
                flat, self.weight_int8, self.scale
            )
            out = out.reshape(*x.shape[:-1], self.out_features)
            return out if self.bias is None else out + self.bias
        weight = self.weight_int8.to(self.dtype) * self.scale[:, None]
        dense: torch.Tensor = nn.functional.linear(x, weight, self.bias)
        return dense


def _swap(module: nn.Module, make: Callable[[nn.Linear], nn.Module]) -> int:
    """Replace every ``nn.Linear`` below ``module`` by ``make(linear)``, one at a time."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, make(child))
            count += 1
        else:
            count += _swap(child, make)
    return count


def apply_plan(model: nn.Module, plan: CpuPlan) -> nn.Module:
    """Set torch's threads and swap ``model``'s linear layers as ``plan`` says, in place.

    int8 covers the text decoder and the output head (what every decode step reads); the
    vision tower and projector run once per image and stay in ``plan.dtype`` (prepacked
    when bf16).
    """
    torch.set_num_threads(plan.threads)
    dtype = getattr(torch, plan.dtype)
    if plan.quantization == "int8":
        head: nn.Module = model.lm_head  # type: ignore[assignment]
        model.lm_head = Int8Linear(head, dtype)  # type: ignore[arg-type]
        _swap(model.model.language_model, lambda linear: Int8Linear(linear, dtype))  # type: ignore[union-attr, arg-type]
    if plan.packed:
        _swap(model, PackedLinear)
    return model
