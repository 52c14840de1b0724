"""docvlm's own PaliGemma 2 generation loop: prefill once, a preallocated KV cache,
static-shape decode steps (captured in a CUDA graph on GPUs), continuous batching.

Semantics are transformers' (eager Gemma 2 attention), step for step:

- prefill: image features (SigLIP + projector) replace the ``<image>`` tokens; the whole
  prompt is one bidirectional block (token_type_ids 0), so every layer, sliding or not,
  attends over the whole prompt; positions count from 1;
- decode: causal; sliding layers see keys with index > i - sliding_window (index in the
  sequence, prompt included), full layers all earlier keys; scores are scaled by
  query_pre_attn_scalar**-0.5, soft-capped (tanh) and soft-maxed in float32; the final
  logits are soft-capped too.

One deliberate difference from batched ``generate``: there, left padding takes up index
positions, so once a padded sequence outgrows the sliding window its sliding layers see
fewer real tokens than the same sequence alone. Here every sequence has its own
unpadded cache, so a request's tokens do not depend on what it is batched with; they
equal ``generate`` run on that request alone (tests check both cases).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from docvlm.engines import Generation, Request, Stop, repeats

if TYPE_CHECKING:
    import torch

__all__ = ["PaliGemmaEngine", "repeats"]


@dataclass
class _Sequence:
    index: int  # position in the caller's request list
    slot: int
    budget: int
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    stop: Stop | None = None


class PaliGemmaEngine:
    """Greedy generation for a loaded ``PaliGemmaForConditionalGeneration``.

    ``slots`` sequences decode together; a finished one (EOS, its token budget, or a
    runaway repetition when ``repetition_span`` is set) frees its slot for the next
    request, so crops from different pages, tasks and resolutions share the GPU.
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
    ) -> None:
        self.model = model
        self.processor = processor
        self._checkpoint = checkpoint
        self.slots = slots
        self.repetition_span = repetition_span
        self.cuda_graphs = cuda_graphs
        self._resolution = int(processor.image_processor.size["height"])
        self._eos = int(processor.tokenizer.eos_token_id)
        text = model.config.text_config
        self._lm = model.model.language_model
        self._layers = list(self._lm.layers)
        self._sliding = [t == "sliding_attention" for t in text.layer_types]
        self._window = int(text.sliding_window or 0)
        self._scaling = float(text.query_pre_attn_scalar) ** -0.5
        self._attn_cap = text.attn_logit_softcapping
        self._final_cap = text.final_logit_softcapping
        self._kv_heads = int(text.num_key_value_heads)
        self._heads = int(text.num_attention_heads)
        self._head_dim = int(text.head_dim)
        self._state: dict[str, torch.Tensor] | None = None
        self._graph: Any = None

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

    # --- attention -------------------------------------------------------------------

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Eager Gemma 2 attention. q [B,H,Q,D]; k, v [B,Hkv,K,D]; mask [B,1|H,Q,K] bool."""
        import torch

        b, h, n, d = q.shape
        groups = h // self._kv_heads
        # grouped-query attention without materialising repeated keys
        qg = q.reshape(b, self._kv_heads, groups * n, d)
        scores = torch.matmul(qg, k.transpose(2, 3)).reshape(b, h, n, -1) * self._scaling
        if self._attn_cap is not None:
            scores = torch.tanh(scores / self._attn_cap) * self._attn_cap
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(weights.reshape(b, self._kv_heads, groups * n, -1), v)
        return out.reshape(b, h, n, d)

    def _layer(
        self,
        index: int,
        hidden: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        write: Any,
        read: Any,
        mask: Any,
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
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        write(index, k, v)
        keys, values = read(index)
        out = self._attend(q, keys, values, mask(index))
        out = attention.o_proj(out.transpose(1, 2).reshape(*x.shape[:-1], -1))
        hidden = residual + layer.post_attention_layernorm(out)
        residual = hidden
        x = layer.mlp(layer.pre_feedforward_layernorm(hidden))
        result: torch.Tensor = residual + layer.post_feedforward_layernorm(x)
        return result

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        import torch

        logits: torch.Tensor = self.model.lm_head(self._lm.norm(hidden))
        if self._final_cap is not None:
            logits = torch.tanh(logits / self._final_cap) * self._final_cap
        return logits

    # --- prefill ---------------------------------------------------------------------

    def _prefill(
        self,
        request: Request,
        slot: int,
        cache: tuple[torch.Tensor, torch.Tensor],
    ) -> tuple[int, float, int]:
        """Encode the image, run the prompt, fill the slot's cache; first token, logprob, length."""
        import torch

        inputs = self.processor(
            images=[request.image], text=["<image>" + request.prompt], return_tensors="pt"
        )
        ids = inputs["input_ids"].to(self.device)
        pixels = inputs["pixel_values"].to(self.device, self.model.dtype)
        inner = self.model.model
        embeds = inner.get_input_embeddings()(ids)
        features = inner.get_image_features(pixels).pooler_output.to(embeds.dtype)
        image_mask = (ids == self.model.config.image_token_id).unsqueeze(-1)
        hidden = embeds.masked_scatter(image_mask, features)
        n = ids.shape[1]
        if n + request.max_new_tokens > cache[0].shape[3]:
            raise ValueError(f"prompt of {n} tokens does not fit the cache")  # a sizing bug
        positions = torch.arange(1, n + 1, device=self.device).unsqueeze(0)
        cos, sin = self._lm.rotary_emb(hidden, positions)
        keys, values = cache
        full = torch.ones(1, 1, n, n, dtype=torch.bool, device=self.device)

        def write(layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
            keys[layer, slot, :, :n] = k[0]
            values[layer, slot, :, :n] = v[0]

        def read(layer: int) -> tuple[torch.Tensor, torch.Tensor]:
            return keys[layer, slot : slot + 1, :, :n], values[layer, slot : slot + 1, :, :n]

        for index in range(len(self._layers)):
            hidden = self._layer(index, hidden, cos, sin, write, read, lambda _: full)
        logprobs = torch.log_softmax(self._logits(hidden[:, -1:]).float(), dim=-1)[0, 0]
        token = int(torch.argmax(logprobs))
        return token, float(logprobs[token]), n

    # --- decode ----------------------------------------------------------------------

    def _decode(self, state: dict[str, torch.Tensor]) -> None:
        """One token for every slot, static shapes only (capturable in a CUDA graph).

        Reads state["tokens"], ["lengths"] (tokens already cached); writes the new key and
        value at index ``lengths`` and the next greedy token and its logprob.
        """
        import torch

        keys, values = state["keys"], state["values"]
        tokens, lengths = state["tokens"], state["lengths"]
        slots, capacity = keys.shape[1], keys.shape[3]
        hidden = self._lm.embed_tokens(tokens.unsqueeze(1))
        cos, sin = self._lm.rotary_emb(hidden, (lengths + 1).unsqueeze(1))
        index = torch.arange(capacity, device=tokens.device).unsqueeze(0)
        causal = index <= lengths.unsqueeze(1)
        window = causal & (index > lengths.unsqueeze(1) - self._window)
        masks = (causal.view(slots, 1, 1, capacity), window.view(slots, 1, 1, capacity))
        rows = torch.arange(slots, device=tokens.device)

        def write(layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
            keys[layer, rows, :, lengths] = k[:, :, 0]
            values[layer, rows, :, lengths] = v[:, :, 0]

        def read(layer: int) -> tuple[torch.Tensor, torch.Tensor]:
            return keys[layer], values[layer]

        def mask(layer: int) -> torch.Tensor:
            return masks[1] if self._sliding[layer] else masks[0]

        for layer in range(len(self._layers)):
            hidden = self._layer(layer, hidden, cos, sin, write, read, mask)
        logprobs = torch.log_softmax(self._logits(hidden).float(), dim=-1)[:, 0]
        best = torch.argmax(logprobs, dim=-1)
        state["next"].copy_(best)
        state["logprob"].copy_(logprobs.gather(1, best.unsqueeze(1))[:, 0])

    def _step(self, state: dict[str, torch.Tensor]) -> None:
        """Run ``_decode``, replaying a CUDA graph captured on these buffers on a GPU."""
        import torch

        if not (self.cuda_graphs and self.device.type == "cuda"):
            self._decode(state)
            return
        if self._graph is None:
            stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                self._decode(state)  # warm-up outside the capture (the step is idempotent)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._decode(state)
            self._graph = graph
        self._graph.replay()

    def _buffers(self, slots: int, capacity: int) -> dict[str, torch.Tensor]:
        """Preallocated cache and step buffers, reused while the shape fits (a captured
        graph is bound to these very tensors)."""
        import torch

        capacity = -(-capacity // 256) * 256  # round up, so calls share buffers
        if self._state is not None:
            keys = self._state["keys"]
            if keys.shape[1] == slots and keys.shape[3] >= capacity:
                for name in ("tokens", "lengths"):
                    self._state[name].zero_()
                return self._state
        shape = (len(self._layers), slots, self._kv_heads, capacity, self._head_dim)
        dtype, device = self.model.dtype, self.device
        self._state = {
            "keys": torch.zeros(shape, dtype=dtype, device=device),
            "values": torch.zeros(shape, dtype=dtype, device=device),
            "tokens": torch.zeros(slots, dtype=torch.long, device=device),
            "lengths": torch.zeros(slots, dtype=torch.long, device=device),
            "next": torch.zeros(slots, dtype=torch.long, device=device),
            "logprob": torch.zeros(slots, dtype=torch.float32, device=device),
        }
        self._graph = None
        return self._state

    # --- the loop --------------------------------------------------------------------

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """Greedy answers in request order, with per-token logprobs and a stop reason."""
        import torch

        if not requests:
            return []
        image_tokens = int(self.processor.image_seq_length)
        prompt_room = (
            image_tokens
            + 2
            + max(len(self.processor.tokenizer(r.prompt + "\n").input_ids) for r in requests)
        )
        capacity = prompt_room + max(r.max_new_tokens for r in requests) + 1
        state = self._buffers(min(self.slots, len(requests)), capacity)
        slots = state["keys"].shape[1]
        pending = deque(range(len(requests)))
        active: dict[int, _Sequence] = {}
        results: dict[int, Generation] = {}
        free = list(range(slots))
        with torch.inference_mode():
            while pending or active:
                while pending and free:  # continuous batching: fill every free slot
                    index, slot = pending.popleft(), free.pop(0)
                    sequence = _Sequence(index, slot, requests[index].max_new_tokens)
                    token, logprob, length = self._prefill(
                        requests[index], slot, (state["keys"], state["values"])
                    )
                    state["tokens"][slot] = token
                    state["lengths"][slot] = length
                    self._accept(sequence, token, logprob)
                    if sequence.stop:
                        results[index] = self._finish(sequence)
                        free.append(slot)
                    else:
                        active[slot] = sequence
                if not active:
                    continue
                self._step(state)
                tokens = state["next"].tolist()
                logprobs = state["logprob"].tolist()
                for slot, sequence in list(active.items()):
                    self._accept(sequence, tokens[slot], logprobs[slot])
                    state["tokens"][slot] = tokens[slot]
                    state["lengths"][slot] += 1
                    if sequence.stop:
                        results[sequence.index] = self._finish(sequence)
                        del active[slot]
                        free.append(slot)
        return [results[i] for i in range(len(requests))]

    def _accept(self, sequence: _Sequence, token: int, logprob: float) -> None:
        if token == self._eos:
            sequence.stop = "eos"
            return
        sequence.tokens.append(token)
        sequence.logprobs.append(logprob)
        if len(sequence.tokens) >= sequence.budget:
            sequence.stop = "length"
        elif self.repetition_span and repeats(sequence.tokens, self.repetition_span):
            sequence.stop = "repetition"

    def _finish(self, sequence: _Sequence) -> Generation:
        return Generation(
            text=self.processor.tokenizer.decode(sequence.tokens, skip_special_tokens=True),
            token_ids=tuple(sequence.tokens),
            logprobs=tuple(sequence.logprobs),
            stop=sequence.stop or "length",
        )
