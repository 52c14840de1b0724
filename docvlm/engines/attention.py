"""Gemma 2 attention for docvlm's engine, in two implementations with one meaning.

Both compute transformers' eager Gemma 2 attention: scores ``q·k * scaling``, soft-capped
``cap * tanh(s / cap)``, masked, soft-maxed in float32; query head ``h`` reads KV head
``h // (heads / kv_heads)`` (transformers' ``repeat_kv``). The masks are the two the
engine needs:

- prefill: a right-padded batch of prompts, row ``b`` valid for its first ``lengths[b]``
  tokens; every query sees every valid key (the PaliGemma prompt is one bidirectional
  block, in sliding layers too);
- decode: one new query per slot at cache index ``lengths[b]``; it sees keys
  ``j <= lengths[b]``, and in sliding layers only ``j > lengths[b] - window``.

``eager`` materializes the scores (the reference, and the CPU path; it reads only the
cache span some slot still needs). ``flex`` is PyTorch's FlexAttention: the soft-cap is a
``score_mod`` and the mask a block mask built from ``lengths``, so the fused kernel never
materializes a mask and, when decoding, reads only each slot's live blocks (none for an
idle slot). Block masks are built with static shapes only, so a decode step that uses them
can be captured in a CUDA graph. Every index tensor a mask reads is int32, as the
kernel's own block indices are: an int64 length beside them made Triton reject the
compiled kernel ("Ternary expression with dynamic condition has inconsistent types int64
and int32", seen on an H200).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

__all__ = [
    "RECOMPILE_LIMIT",
    "Backend",
    "Geometry",
    "compile_static",
    "decode",
    "decode_blocks",
    "prefill",
    "prefill_blocks",
]

Backend = Literal["eager", "flex"]

#: FlexAttention's block size (keys per block) on every device.
BLOCK = 128


@dataclass(frozen=True)
class Geometry:
    """What the attention needs from the model's config."""

    heads: int
    kv_heads: int
    scaling: float
    softcap: float | None


def _eager(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    """q [B,H,Q,D]; k, v [B,Hkv,K,D]; mask [B,1,Q,K] bool -> [B,H,Q,D]."""
    import torch

    b, h, n, d = q.shape
    groups = h // geometry.kv_heads
    # grouped-query attention without materialising repeated keys: heads of one group
    # (h // groups) are adjacent, as in repeat_kv
    qg = q.reshape(b, geometry.kv_heads, groups * n, d)
    scores = torch.matmul(qg, k.transpose(2, 3)).reshape(b, h, n, -1) * geometry.scaling
    if geometry.softcap is not None:
        scores = torch.tanh(scores / geometry.softcap) * geometry.softcap
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    out = torch.matmul(weights.reshape(b, geometry.kv_heads, groups * n, -1), v)
    return out.reshape(b, h, n, d)


def _score_mod(geometry: Geometry) -> Callable[..., torch.Tensor] | None:
    cap = geometry.softcap
    if cap is None:
        return None

    def softcap(
        score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor
    ) -> torch.Tensor:
        import torch

        return torch.tanh(score / cap) * cap

    return softcap


#: Shapes one process may compile a kernel for: prefill rows (1, 2, 4, 8) times prompt
#: blocks per resolution, and one decode shape per cache size, sliding and full. torch's
#: default (8) is reached by a service mixing resolutions, after which it silently runs
#: the unfused kernel (scores materialized) for every new shape.
RECOMPILE_LIMIT = 64


def compile_static(function: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compile`` for static shapes, allowed ``RECOMPILE_LIMIT`` shapes."""
    import inspect

    import torch

    compile: Any = torch.compile  # its typed overloads leave out recompile_limit
    if "recompile_limit" in inspect.signature(compile).parameters:
        compiled: Callable[..., Any] = compile(
            function, dynamic=False, recompile_limit=RECOMPILE_LIMIT
        )
        return compiled
    config = torch._dynamo.config  # older torch: one limit for every compiled region
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
    compiled = compile(function, dynamic=False)
    return compiled


class _Kernels:
    """The compiled FlexAttention, made once per process on first use.

    A plain holder, not ``functools.cache``: dynamo cannot trace into an ``lru_cache``
    wrapper and warns (then graph-breaks) when a compiled decode step reaches it.
    """

    flex: Callable[..., Any] | None = None


def _flex(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocks: Any, geometry: Geometry
) -> torch.Tensor:
    import torch
    from torch.nn.attention.flex_attention import flex_attention

    # the fused kernel on GPUs; elsewhere the unfused reference (materialized scores).
    # Inside a compiled decode step, the step's own compilation fuses it.
    kernel: Any = flex_attention
    if q.device.type == "cuda" and not torch.compiler.is_compiling():
        if _Kernels.flex is None:
            _Kernels.flex = compile_static(flex_attention)
        kernel = _Kernels.flex
    out: torch.Tensor = kernel(
        q,
        k,
        v,
        score_mod=_score_mod(geometry),
        block_mask=blocks,
        scale=geometry.scaling,
        enable_gqa=geometry.heads != geometry.kv_heads,
    )
    return out


def prefill_blocks(lengths: torch.Tensor, n: int) -> Any:
    """Block mask of a right-padded prompt batch [B, n]: keys < lengths[b], all queries."""
    import torch
    from torch.nn.attention.flex_attention import BlockMask

    lengths = lengths.to(torch.int32)  # every index the kernel sees is int32 (module docstring)
    rows = lengths.shape[0]
    q_blocks = -(-n // BLOCK)
    kv_blocks = torch.arange(q_blocks, device=lengths.device, dtype=torch.int32)
    count = (-(-lengths // BLOCK)).view(rows, 1, 1).expand(rows, 1, q_blocks)
    indices = kv_blocks.view(1, 1, 1, q_blocks).expand(rows, 1, q_blocks, q_blocks)

    def valid(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return k < lengths[b]

    return BlockMask.from_kv_blocks(
        count.contiguous(),
        indices.contiguous(),
        BLOCK_SIZE=BLOCK,
        mask_mod=valid,
        seq_lengths=(n, n),
        compute_q_blocks=False,
    )


def decode_blocks(lengths: torch.Tensor, capacity: int, window: int | None) -> Any:
    """Block mask of one query per slot at index lengths[b] over a cache of ``capacity``.

    Lists only the blocks that hold the slot's live keys, from the window's first block
    (or block 0) to the block of ``lengths[b]``; an idle slot (length 0) reads one block.
    """
    import torch
    from torch.nn.attention.flex_attention import BlockMask

    lengths = lengths.to(torch.int32)  # int32 like the kernel's own indices (module docstring)
    slots = lengths.shape[0]
    total = -(-capacity // BLOCK)
    last = lengths // BLOCK
    first = (
        torch.clamp(lengths - window + 1, min=0) // BLOCK
        if window is not None
        else torch.zeros_like(lengths)
    )
    count = (last - first + 1).view(slots, 1, 1)
    steps = torch.arange(total, device=lengths.device, dtype=torch.int32)
    indices = torch.clamp(first.view(slots, 1) + steps, max=total - 1).to(torch.int32)

    def live(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        seen = k <= lengths[b]
        if window is not None:
            seen = seen & (k > lengths[b] - window)
        return seen

    return BlockMask.from_kv_blocks(
        count,
        indices.view(slots, 1, 1, total),
        BLOCK_SIZE=BLOCK,
        mask_mod=live,
        seq_lengths=(1, capacity),
        compute_q_blocks=False,
    )


def prefill(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    lengths: torch.Tensor,
    geometry: Geometry,
    backend: Backend = "eager",
    blocks: Any = None,
) -> torch.Tensor:
    """Bidirectional attention over each row's first ``lengths[b]`` keys.

    q [B,H,N,D]; k, v [B,Hkv,N,D]; ``blocks`` is ``prefill_blocks(lengths, N)`` (built
    once for all layers) for ``flex``. Rows past a prompt's length are padding.
    """
    import torch

    if backend == "flex":
        if blocks is None:
            blocks = prefill_blocks(lengths, q.shape[2])
        return _flex(q, k, v, blocks, geometry)
    index = torch.arange(k.shape[2], device=k.device)
    mask = (index.view(1, -1) < lengths.view(-1, 1)).view(k.shape[0], 1, 1, -1)
    return _eager(q, k, v, mask, geometry)


def decode(
    q: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    lengths: torch.Tensor,
    geometry: Geometry,
    window: int | None,
    backend: Backend = "eager",
    blocks: Any = None,
    span: tuple[int, int] | None = None,
) -> torch.Tensor:
    """One query per slot against its cache (the new key already written at ``lengths``).

    q [S,H,1,D]; keys, values [S,Hkv,C,D]. ``flex`` takes ``decode_blocks(lengths, C,
    window)``; ``eager`` reads only cache indices ``span = (lo, hi)`` when given, which
    must cover every slot's live keys.
    """
    import torch

    if backend == "flex":
        if blocks is None:
            blocks = decode_blocks(lengths, keys.shape[2], window)
        return _flex(q, keys, values, blocks, geometry)
    lo, hi = span if span is not None else (0, keys.shape[2])
    index = torch.arange(lo, hi, device=keys.device).view(1, -1)
    now = lengths.view(-1, 1)
    mask = index <= now
    if window is not None:
        mask = mask & (index > now - window)
    mask = mask.view(keys.shape[0], 1, 1, -1)
    return _eager(q, keys[:, :, lo:hi], values[:, :, lo:hi], mask, geometry)
