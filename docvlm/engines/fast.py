"""docvlm's own PaliGemma 2 generation loop: batched prefill, a preallocated KV cache for
a fixed number of slots, a decode step that keeps its bookkeeping on the device (compiled
and captured in a CUDA graph on GPUs), and continuous batching.

Semantics are transformers' (eager Gemma 2 attention), step for step:

- prefill: image features (SigLIP + projector) replace the ``<image>`` tokens; the whole
  prompt is one bidirectional block (token_type_ids 0), so every layer, sliding or not,
  attends over the whole prompt; positions count from 1;
- decode: causal; sliding layers see keys with index > i - sliding_window (index in the
  sequence, prompt included), full layers all earlier keys; scores are scaled by
  query_pre_attn_scalar**-0.5, soft-capped (tanh) and soft-maxed in float32; the final
  logits are soft-capped too. ``docvlm.engines.attention`` holds both implementations.

One deliberate difference from batched ``generate``: there, left padding takes up index
positions, so once a padded sequence outgrows the sliding window its sliding layers see
fewer real tokens than the same sequence alone. Here every sequence has its own
unpadded cache, so a request's tokens do not depend on what it is batched with; they
equal ``generate`` run on that request alone (tests check both cases).

The decode step records each slot's token, log-probability and stop (EOS, budget) in
device buffers; the host reads them every ``sync_every`` steps, then refills free slots
and applies the repetition guard (cutting a sequence back to where the loop was found,
so results do not depend on ``sync_every``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import docvlm.engines.attention as attn
from docvlm.engines.detokenize import TokenEnds
from docvlm.engines.slots import Running, State, advance, allocate, collect
from docvlm.reading.requests import Generation, Request, repeats

if TYPE_CHECKING:
    import torch

__all__ = ["PaliGemmaEngine", "repeats"]

_log = logging.getLogger(__name__)


class PaliGemmaEngine:
    """Greedy generation for a loaded ``PaliGemmaForConditionalGeneration``.

    ``slots`` sequences decode together; a finished one (EOS, its token budget, or a
    runaway repetition when ``repetition_span`` is set) frees its slot for the next
    request, so crops from different pages, tasks and resolutions share the GPU.
    ``attention`` is ``"flex"`` (FlexAttention, default on CUDA) or ``"eager"``;
    ``compile`` runs the whole decode step through ``torch.compile`` (off by default;
    the attention kernels are compiled on CUDA either way). PyTorch 2.13's CPU compiler
    has no FlexAttention kernel for these shapes, so on the CPU the step falls back to
    eager with one warning; on CUDA ``tests/engines/test_engine_cuda.py`` checks that it
    compiles. ``cuda_graphs`` (CUDA only) captures the decode step once per cache size.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        checkpoint: str,
        *,
        slots: int = 32,
        repetition_span: int | None = 512,
        cuda_graphs: bool = True,
        attention: attn.Backend | None = None,
        compile: bool = False,
        sync_every: int = 8,
        prefill_batch: int = 8,
    ) -> None:
        self.model = model
        self.processor = processor
        self._checkpoint = checkpoint
        self.slots = slots
        self.repetition_span = repetition_span
        cuda = self.device.type == "cuda"
        self.cuda_graphs = cuda_graphs and cuda
        self.attention: attn.Backend = attention or ("flex" if cuda else "eager")
        self.compile = compile
        self.sync_every = max(1, sync_every)
        self.prefill_batch = max(1, prefill_batch)
        # few prefill shapes for the compiled kernels: whole blocks, a power of two of rows
        self.fixed_shapes = self.attention == "flex" and cuda
        self._resolution = int(processor.image_processor.size["height"])
        self.eos = int(processor.tokenizer.eos_token_id)
        self._ends = TokenEnds(processor.tokenizer.decode)  # Generation.ends
        text = model.config.text_config
        self._lm = model.model.language_model
        self._layers = list(self._lm.layers)
        self._sliding = [t == "sliding_attention" for t in text.layer_types]
        self._window = int(text.sliding_window) if text.sliding_window else None
        self._final_cap = text.final_logit_softcapping
        self._kv_heads = int(text.num_key_value_heads)
        self._head_dim = int(text.head_dim)
        self._geometry = attn.Geometry(
            heads=int(text.num_attention_heads),
            kv_heads=self._kv_heads,
            scaling=float(text.query_pre_attn_scalar) ** -0.5,
            softcap=text.attn_logit_softcapping,
        )
        self._state: State | None = None
        self._graph: Any = None
        self._step_fn: Callable[[State], None] | None = None

    @property
    def checkpoint(self) -> str:
        return self._checkpoint

    @property
    def resolution(self) -> int:
        return self._resolution

    @property
    def device(self) -> torch.device:
        device: torch.device = self.model.device
        return device

    # --- one transformer layer ---------------------------------------------------------

    def _layer(
        self,
        index: int,
        hidden: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        attend: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        from transformers.models.gemma2.modeling_gemma2 import apply_rotary_pos_emb

        layer = self._layers[index]
        attention = layer.self_attn
        residual = hidden
        x = layer.input_layernorm(hidden)
        shape = (*x.shape[:-1], -1, self._head_dim)
        q = attention.q_proj(x).view(shape).transpose(1, 2)
        k = attention.k_proj(x).view(shape).transpose(1, 2)
        v = attention.v_proj(x).view(shape).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, *rotary)
        out = attend(index, q, k, v)
        out = attention.o_proj(out.transpose(1, 2).reshape(*x.shape[:-1], -1))
        hidden = residual + layer.post_attention_layernorm(out)
        residual = hidden
        x = layer.mlp(layer.pre_feedforward_layernorm(hidden))
        result: torch.Tensor = residual + layer.post_feedforward_layernorm(x)
        return result

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Soft-capped float32 logits of hidden states [..., hidden]."""
        import torch

        logits = self.model.lm_head(self._lm.norm(hidden)).float()
        if self._final_cap is not None:
            logits = torch.tanh(logits / self._final_cap) * self._final_cap
        result: torch.Tensor = logits
        return result

    # --- prefill ---------------------------------------------------------------------

    def _prefill(self, s: State, slots: list[int], batch: list[Request]) -> list[int]:
        """Encode the images (one SigLIP batch), run the right-padded prompts together,
        fill the slots' caches and record each first token; the prompts' lengths."""
        import torch

        inputs = self.processor(
            images=[r.image for r in batch],
            text=["<image>" + r.prompt for r in batch],
            return_tensors="pt",
            padding="longest",
        )
        left, valid = inputs["input_ids"], inputs["attention_mask"].bool()
        prompt_lengths: list[int] = valid.sum(1).tolist()
        real, n = len(batch), max(prompt_lengths)
        padded = real
        if self.fixed_shapes:
            n = -(-n // attn.BLOCK) * attn.BLOCK
            padded = 1 << (real - 1).bit_length()  # 1, 2, 4, 8 rows
        if n > s["keys"].shape[3]:
            raise ValueError(f"prompt of {n} tokens does not fit the cache")  # a sizing bug
        ids = torch.full((padded, n), self.processor.tokenizer.pad_token_id)
        for row in range(real):  # the processor pads on the left; move it right
            ids[row, : prompt_lengths[row]] = left[row][valid[row]]
        # padding rows are one pad token long, so no row is empty
        lengths = torch.tensor(prompt_lengths + [1] * (padded - real), device=self.device)
        ids = ids.to(self.device)
        pixels = inputs["pixel_values"].to(self.device, self.model.dtype)
        inner = self.model.model
        embeds = inner.get_input_embeddings()(ids)
        features = inner.get_image_features(pixels).pooler_output.to(embeds.dtype)
        image = (ids == self.model.config.image_token_id).unsqueeze(-1)
        hidden = embeds.masked_scatter(image, features)
        positions = torch.arange(1, n + 1, device=self.device).expand(padded, n)
        rotary = self._lm.rotary_emb(hidden, positions)
        rows = torch.tensor(slots, device=self.device)
        blocks = attn.prefill_blocks(lengths, n) if self.attention == "flex" else None

        def attend(layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            s["keys"][layer, rows, :, :n] = k[:real]
            s["values"][layer, rows, :, :n] = v[:real]
            return attn.prefill(q, k, v, lengths, self._geometry, self.attention, blocks)

        for index in range(len(self._layers)):
            hidden = self._layer(index, hidden, rotary, attend)
        lengths = lengths[:real]
        last = hidden[torch.arange(real, device=self.device), lengths - 1]
        s["active"][rows] = True
        s["count"][rows] = 0
        s["stop"][rows] = 0
        s["budget"][rows] = torch.tensor([r.max_new_tokens for r in batch], device=self.device)
        s["lengths"][rows] = lengths
        advance(s, rows, self._logits(last))
        return prompt_lengths

    # --- decode ----------------------------------------------------------------------

    def _decode(self, s: State, span: tuple[int, int] | None = None) -> None:
        """One token for every slot, static shapes only (compilable, capturable).

        Writes each slot's input token's key and value at index ``lengths``; idle slots
        compute too but read one key and record nothing.
        """

        keys, values, lengths = s["keys"], s["values"], s["lengths"]
        rows, capacity = s["rows"], keys.shape[3]
        hidden = self._lm.embed_tokens(s["tokens"].unsqueeze(1))
        rotary = self._lm.rotary_emb(hidden, (lengths + 1).unsqueeze(1))
        blocks: dict[bool, Any] = {}
        if self.attention == "flex":
            blocks = {
                False: attn.decode_blocks(lengths, capacity, None),
                True: attn.decode_blocks(lengths, capacity, self._window),
            }

        def attend(layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            keys[layer, rows, :, lengths] = k[:, :, 0]
            values[layer, rows, :, lengths] = v[:, :, 0]
            sliding = self._sliding[layer]
            return attn.decode(
                q,
                keys[layer],
                values[layer],
                lengths,
                self._geometry,
                self._window if sliding else None,
                self.attention,
                blocks.get(sliding),
                span,
            )

        for layer in range(len(self._layers)):
            hidden = self._layer(layer, hidden, rotary, attend)
        lengths.add_(s["active"].long())
        advance(s, rows, self._logits(hidden[:, 0]))

    def _step(self, s: State, span: tuple[int, int] | None) -> None:
        if self._graph is not None:
            self._graph.replay()
        elif span is not None:
            self._decode(s, span)
        else:
            (self._step_fn or self._decode)(s)

    def _prepare_step(self, s: State) -> Callable[[State], None]:
        """The decode step to run: compiled when asked, captured in a CUDA graph on GPUs.
        Runs while every slot is idle, so warming up changes nothing."""
        import torch

        step: Callable[[State], None] = self._decode
        if self.compile:
            compiled = attn.compile_static(self._decode)
            try:
                compiled(s)
                compiled(s)
                step = compiled
            except Exception as error:  # an unsupported torch/GPU: the eager step is correct
                _log.warning("torch.compile of the decode step failed, running eager: %s", error)
        if self.cuda_graphs:
            stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                step(s)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step(s)
            self._graph = graph
        return step

    # --- buffers ---------------------------------------------------------------------

    def warmup(self, capacity: int) -> None:
        """Allocate the cache for ``capacity`` tokens per slot and prepare (compile,
        capture) the decode step now, outside any timed region."""
        import torch

        with torch.inference_mode():
            self._buffers(capacity)

    def _buffers(self, capacity: int) -> State:
        """The slots' cache and step buffers, kept while ``capacity`` fits (a captured
        graph is bound to these very tensors); idle on return."""
        capacity = -(-capacity // 256) * 256  # round up, so calls share buffers
        s = self._state
        if s is None or s["keys"].shape[3] < capacity:
            shape = (len(self._layers), self.slots, self._kv_heads, capacity, self._head_dim)
            vocabulary = int(self.model.lm_head.out_features)
            self._state = s = allocate(shape, vocabulary, self.model.dtype, self.device, self.eos)
            self._graph = self._step_fn = None
        s["active"].zero_()
        s["lengths"].zero_()
        s["eos"].fill_(self.eos)
        if self._step_fn is None and (self.compile or self.cuda_graphs):
            self._step_fn = self._prepare_step(s)  # every slot idle: warming up is harmless
        return s

    def _capacity(self, requests: Sequence[Request]) -> int:
        text = max(len(self.processor.tokenizer(r.prompt + "\n").input_ids) for r in requests)
        prompt = int(self.processor.image_seq_length) + 2 + text
        return prompt + max(r.max_new_tokens for r in requests) + 1

    # --- the loop --------------------------------------------------------------------

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """Greedy answers in request order, with per-token logprobs and a stop reason."""
        import torch

        if not requests:
            return []
        pending = deque(range(len(requests)))
        occupied: dict[int, Running] = {}
        results: dict[int, Generation] = {}
        lengths = [0] * self.slots  # the host's bound on each slot's cache length
        decode = self.processor.tokenizer.decode

        def finish(done: dict[int, Running]) -> None:
            for slot, running in done.items():
                results[running.index] = running.result(decode, self._ends)
                del occupied[slot]

        with torch.inference_mode():
            s = self._buffers(self._capacity(requests))
            while pending or occupied:
                free = [slot for slot in range(self.slots) if slot not in occupied]
                if pending and free:  # continuous batching: fill every free slot
                    while pending and free:
                        take = min(len(pending), len(free), self.prefill_batch)
                        slots, free = free[:take], free[take:]
                        indices = [pending.popleft() for _ in range(take)]
                        prompts = self._prefill(s, slots, [requests[i] for i in indices])
                        for slot, index, n in zip(slots, indices, prompts, strict=True):
                            occupied[slot] = Running(index, requests[index].max_new_tokens)
                            lengths[slot] = n
                    finish(collect(s, occupied, lengths, self.repetition_span))
                if not occupied:
                    continue
                left = max(r.budget - len(r.tokens) for r in occupied.values())
                for _ in range(min(self.sync_every, left)):
                    self._step(s, self._span(lengths, occupied))
                    lengths = [n + 1 for n in lengths]
                finish(collect(s, occupied, lengths, self.repetition_span))
        return [results[i] for i in range(len(requests))]

    def _span(self, lengths: list[int], occupied: dict[int, Running]) -> tuple[int, int] | None:
        """Cache indices the eager attention reads (None: all of them, as graphs need)."""
        if self.cuda_graphs or self.compile or self.attention != "eager" or not occupied:
            return None
        capacity = self._state["keys"].shape[3] if self._state is not None else 0
        return 0, min(capacity, max(lengths[slot] for slot in occupied) + 1)

    # --- teacher forcing -------------------------------------------------------------

    def score(self, requests: Sequence[Request], answers: Sequence[Sequence[int]]) -> list[Any]:
        """Logits under teacher forcing: for each request, float32 [len(answer) + 1,
        vocabulary], the soft-capped logits after the prompt and after each answer token.
        Runs the same prefill and decode step as ``generate`` (a test hook)."""
        import torch

        out: list[Any] = []
        chunk = self.slots
        for first in range(0, len(requests), chunk):
            batch, forced = requests[first : first + chunk], answers[first : first + chunk]
            longest = max(len(a) for a in forced)
            slots = list(range(len(batch)))
            rows = torch.tensor(slots, device=self.device)
            with torch.inference_mode():
                s = self._buffers(self._capacity(batch) + longest)
                s["eos"].fill_(-1)  # never stop on EOS: the answer decides the tokens
                big = [Request(r.image, r.prompt, longest + 1) for r in batch]
                for start in range(0, len(big), self.prefill_batch):
                    part = slots[start : start + self.prefill_batch]
                    self._prefill(s, part, big[start : start + self.prefill_batch])
                steps = [s["logits"][rows].clone()]
                for t in range(longest):
                    s["tokens"][rows] = torch.tensor(
                        [a[t] if t < len(a) else 0 for a in forced], device=self.device
                    )
                    self._step(s, None)
                    steps.append(s["logits"][rows].clone())
                s["eos"].fill_(self.eos)
            table = torch.stack(steps, dim=1)
            out.extend(table[i, : len(a) + 1] for i, a in enumerate(forced))
        return out
