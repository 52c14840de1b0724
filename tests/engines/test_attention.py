"""The engine's Gemma 2 attention, both implementations, against transformers' eager one.

Shapes are chosen so that every way of getting Gemma 2 wrong shows: grouped queries
(8 query heads on 2 KV heads), prompts longer than the sliding window, slots on both sides
of the window's edge, and scores large enough that soft-capping changes them.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from docvlm.engines import attention as attn

torch = pytest.importorskip("torch")
modeling = pytest.importorskip("transformers.models.gemma2.modeling_gemma2")

HEADS, KV_HEADS, DIM, WINDOW = 8, 2, 16, 64
GEOMETRY = attn.Geometry(heads=HEADS, kv_heads=KV_HEADS, scaling=DIM**-0.5, softcap=50.0)
BACKENDS = ["eager", pytest.param("flex", marks=pytest.mark.filterwarnings("ignore:flex"))]


def _reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor, cap: float | None
) -> torch.Tensor:
    """transformers' eager Gemma 2 attention; q [1,H,Q,D], k, v [1,Hkv,K,D], visible [Q,K]."""
    module = SimpleNamespace(num_key_value_groups=HEADS // KV_HEADS, training=False)
    mask = torch.zeros(visible.shape).masked_fill(~visible, torch.finfo(torch.float32).min)
    out, _ = modeling.eager_attention_forward(
        module, q, k, v, mask[None, None], scaling=GEOMETRY.scaling, softcap=cap
    )
    result: torch.Tensor = out.transpose(1, 2)  # back to [1,H,Q,D]
    return result


def _random(*shape: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator) * 6.0  # scores of tens: the cap matters


@pytest.mark.parametrize("backend", BACKENDS)
def test_prefill_is_bidirectional_over_each_prompt(backend: attn.Backend) -> None:
    lengths = torch.tensor([150, 97, 40])  # right-padded batch, longer than the window
    n = 150
    q, k, v = (
        _random(3, HEADS, n, DIM, seed=1),
        _random(3, KV_HEADS, n, DIM, seed=2),
        _random(3, KV_HEADS, n, DIM, seed=3),
    )
    out = attn.prefill(q, k, v, lengths, GEOMETRY, backend)
    for row, length in enumerate(lengths.tolist()):
        part = slice(0, length)
        visible = torch.ones(length, length, dtype=torch.bool)
        args = (q[row : row + 1, :, part], k[row : row + 1, :, part], v[row : row + 1, :, part])
        expected = _reference(*args, visible, GEOMETRY.softcap)
        torch.testing.assert_close(out[row : row + 1, :, part], expected, atol=1e-4, rtol=1e-4)
        uncapped = _reference(*args, visible, None)
        assert (uncapped - expected).abs().max() > 1e-2  # a missing soft-cap would show


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("window", [None, WINDOW])
def test_decode_sees_its_cache_and_window(backend: attn.Backend, window: int | None) -> None:
    # slots inside, at and past the window's edge, across block edges, and an idle slot
    lengths = torch.tensor([300, 63, 64, 130, 0])
    capacity, slots = 384, 5
    q = _random(slots, HEADS, 1, DIM, seed=4)
    keys, values = (
        _random(slots, KV_HEADS, capacity, DIM, seed=5),
        _random(slots, KV_HEADS, capacity, DIM, seed=6),
    )
    out = attn.decode(q, keys, values, lengths, GEOMETRY, window, backend)
    spanned = attn.decode(q, keys, values, lengths, GEOMETRY, window, "eager", span=(0, 301))
    for slot, now in enumerate(lengths.tolist()):
        index = torch.arange(capacity)
        visible = index <= now
        if window is not None:
            visible &= index > now - window
        args = (q[slot : slot + 1], keys[slot : slot + 1], values[slot : slot + 1])
        expected = _reference(*args, visible[None], GEOMETRY.softcap)
        torch.testing.assert_close(out[slot : slot + 1], expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(spanned[slot : slot + 1], expected, atol=1e-4, rtol=1e-4)


def _listed(blocks: object) -> list[set[int]]:
    """Key blocks a block mask lists, per batch row (one query block)."""
    dense = blocks.to_dense()  # type: ignore[attr-defined]
    return [set(torch.nonzero(dense[b, 0].any(0)).flatten().tolist()) for b in range(len(dense))]


@pytest.mark.parametrize("window", [None, WINDOW])
def test_decode_blocks_are_exactly_the_live_ones(window: int | None) -> None:
    """The fused kernel reads only the listed blocks: they must hold every visible key
    (else a wrong answer) and nothing else (else wasted reads)."""
    lengths = torch.tensor([300, 63, 64, 130, 0, 511])
    blocks = attn.decode_blocks(lengths, 512, window)
    for slot, now in enumerate(lengths.tolist()):
        first = max(0, now - window + 1) if window is not None else 0
        live = set(range(first // attn.BLOCK, now // attn.BLOCK + 1))
        assert _listed(blocks)[slot] == live


def test_prefill_blocks_cover_each_prompt() -> None:
    lengths = torch.tensor([300, 97, 129])
    blocks = attn.prefill_blocks(lengths, 384)
    for row, length in enumerate(lengths.tolist()):
        assert _listed(blocks)[row] == set(range(-(-length // attn.BLOCK)))


def _kernel_reads(blocks: object, queries: int, keys: int) -> torch.Tensor:
    """What a fused FlexAttention kernel lets each query see, [B, Q, K] bool: the keys of
    the blocks listed for the query's block (``kv_num_blocks`` of ``kv_indices``, read
    here as the kernel reads them, not through ``to_dense``), then ``mask_mod``. The CPU
    runs flex unfused and ignores the list, so this is how a CPU test sees it."""
    count, indices = blocks.kv_num_blocks, blocks.kv_indices  # type: ignore[attr-defined]
    size = blocks.BLOCK_SIZE[1]  # type: ignore[attr-defined]
    rows = count.shape[0]
    listed = torch.zeros(rows, queries, keys, dtype=torch.bool)
    for b in range(rows):
        for q_block in range(count.shape[2]):
            q_part = slice(q_block * size, (q_block + 1) * size)
            for k_block in indices[b, 0, q_block, : int(count[b, 0, q_block])].tolist():
                listed[b, q_part, k_block * size : (k_block + 1) * size] = True
    b, q, k = (
        torch.arange(n).view(*(-1 if i == j else 1 for j in range(3)))
        for i, n in enumerate((rows, queries, keys))
    )
    modded = blocks.mask_mod(b, torch.zeros(1, dtype=torch.long), q, k)  # type: ignore[attr-defined]
    return listed & modded.expand(rows, queries, keys)


def _touched(visible: torch.Tensor) -> set[int]:
    """Key blocks holding at least one visible key, for a [K] mask."""
    return set((torch.nonzero(visible).flatten() // attn.BLOCK).tolist())


@pytest.mark.parametrize("window", [None, WINDOW, 200])
def test_decode_kernel_reads_exactly_the_visible_keys(window: int | None) -> None:
    """From the definition alone (key j visible iff j <= now, and j > now - window):
    the kernel's reads are exactly the visible keys, from exactly the blocks holding them
    (an idle slot, length 0, reads key 0)."""
    # 191, 327: the window starts right on a block edge (for 64 and 200)
    lengths = torch.tensor([300, 63, 64, 127, 128, 130, 0, 511, 255, 256, 191, 327])
    capacity = 512
    reads = _kernel_reads(attn.decode_blocks(lengths, capacity, window), 1, capacity)
    listed = attn.decode_blocks(lengths, capacity, window).kv_num_blocks[:, 0, 0].tolist()
    index = torch.arange(capacity)
    for slot, now in enumerate(lengths.tolist()):
        visible = index <= now
        if window is not None:
            visible &= index > now - window
        assert torch.equal(reads[slot, 0], visible), (slot, now)
        assert listed[slot] == len(_touched(visible))  # no block read in vain


def test_prefill_kernel_reads_each_whole_prompt() -> None:
    lengths = torch.tensor([300, 97, 129, 128, 1])
    n = 384
    blocks = attn.prefill_blocks(lengths, n)
    reads = _kernel_reads(blocks, n, n)
    index = torch.arange(n)
    for row, length in enumerate(lengths.tolist()):
        visible = (index < length).expand(length, n)  # every prompt query, every prompt key
        assert torch.equal(reads[row, :length], visible), (row, length)
        assert blocks.kv_num_blocks[row, 0].tolist() == [len(_touched(visible[0]))] * 3


@pytest.mark.gpu
def test_fused_kernels_on_cuda_equal_the_reference() -> None:
    """The compiled FlexAttention kernels read only the listed blocks: any block missing
    from a mask changes the answer here (the CPU runs the unfused reference)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    lengths = torch.tensor([300, 63, 64, 130, 0, 383])
    slots, capacity = len(lengths), 384
    q = _random(slots, HEADS, 1, DIM, seed=7)
    keys, values = (
        _random(slots, KV_HEADS, capacity, DIM, seed=8),
        _random(slots, KV_HEADS, capacity, DIM, seed=9),
    )
    cuda = [t.cuda() for t in (q, keys, values, lengths)]
    for window in (None, WINDOW):
        fused = attn.decode(*cuda, GEOMETRY, window, "flex").cpu()
        expected = attn.decode(q, keys, values, lengths, GEOMETRY, window, "eager")
        torch.testing.assert_close(fused, expected, atol=1e-3, rtol=1e-3)
    prompt = torch.tensor([300, 97, 129])
    q, k, v = (_random(3, h, 384, DIM, seed=10 + h) for h in (HEADS, KV_HEADS, KV_HEADS + 0))
    fused = attn.prefill(q.cuda(), k.cuda(), v.cuda(), prompt.cuda(), GEOMETRY, "flex").cpu()
    expected = attn.prefill(q, k, v, prompt, GEOMETRY, "eager")
    for row, length in enumerate(prompt.tolist()):
        torch.testing.assert_close(
            fused[row, :, :length], expected[row, :, :length], atol=1e-3, rtol=1e-3
        )
