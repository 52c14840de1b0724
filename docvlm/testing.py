"""A tiny, random PaliGemma 2 checkpoint for tests and offline demos.

`write_tiny_checkpoint(directory)` writes a real checkpoint directory (config, safetensors
weights, tokenizer, processor config) that loads through exactly the code path a hub
checkpoint uses. The weights are random, so the model writes noise; the point is that every
stage of the pipeline runs for real without a download.

Run it as ``python -m docvlm.testing DIR [--resolution 224]``.
"""

from __future__ import annotations

import argparse
import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from docvlm.reading.requests import Generation, Request, Stop

__all__ = [
    "TINY_VOCABULARY",
    "ScriptedEngine",
    "scripted_generation",
    "teacher_forced_logits",
    "tiny_processor",
    "tiny_vision_config",
    "write_tiny_checkpoint",
]

_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>"]
_LOC = [f"<loc{i:04d}>" for i in range(1024)]
_SEG = [f"<seg{i:03d}>" for i in range(128)]
_BYTES = [f"<0x{i:02X}>" for i in range(256)]
# Multi-character pieces so that HTML, SMILES and kern encode to short sequences.
_WORDS = [
    "<table>",
    "</table>",
    "<thead>",
    "</thead>",
    "<tbody>",
    "</tbody>",
    "<tr>",
    "</tr>",
    "<td>",
    "</td>",
    "<th>",
    "</th>",
    "<td",
    ' colspan="',
    ' rowspan="',
    ' coords="',
    '">',
    '"',
    "**kern",
    "*-",
    "*^",
    "*v",
    "*clef",
    "*M",
    "*k[",
    "=",
    "==",
    "!!",
    "4c",
    "8d",
    "2e",
    "Cl",
    "Br",
    "[nH]",
    "c1ccccc1",
    "(=O)",
    "ocr",
    "caption",
    "en",
    "detect",
    "answer",
    "table",
    "molecule",
    "music",
    "text",
    "figure",
    ";",
    "\n",
    "\t",
    "▁",
]
TINY_VOCABULARY: tuple[str, ...] = tuple(
    dict.fromkeys(
        _SPECIAL
        + ["<image>"]
        + _LOC
        + _SEG
        + _BYTES
        + _WORDS
        + ["▁" + w for w in ("the", "of", "and", "in", "to", "a")]
        + list(string.ascii_letters + string.digits + string.punctuation)
    )
)


def _tokenizer(vocabulary: tuple[str, ...]) -> object:
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    # Unigram with byte fallback: any text encodes, longer pieces are preferred.
    pieces = [
        (piece, -float(len(vocabulary)) if piece.startswith("<0x") else -1.0 / len(piece))
        for piece in vocabulary
    ]
    model = models.Unigram(pieces, unk_id=vocabulary.index("<unk>"), byte_fallback=True)
    backend = Tokenizer(model)
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in [*_SPECIAL, "<image>"]]
    )
    # Location and segmentation tokens are ordinary (not special) in PaliGemma's
    # vocabulary, so decoding with skip_special_tokens keeps them for the parsers.
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in _LOC + _SEG])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
        add_bos_token=False,
        add_eos_token=False,
    )


def tiny_processor(resolution: int) -> Any:
    """A ``PaliGemmaProcessor`` with the in-process tokenizer, for ``resolution`` px."""
    from transformers import PaliGemmaProcessor, SiglipImageProcessorPil

    image_processor = SiglipImageProcessorPil(
        size={"height": resolution, "width": resolution},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    image_processor.image_seq_length = (resolution // 14) ** 2
    return PaliGemmaProcessor(
        image_processor=image_processor, tokenizer=_tokenizer(TINY_VOCABULARY)
    )


def tiny_vision_config(resolution: int, width: int = 32) -> Any:
    """A two-layer SigLIP of ``width`` with PaliGemma's 14 px patches, no pooling head."""
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=2,
        patch_size=14,
        image_size=resolution,
        vision_use_head=False,
    )


def write_tiny_checkpoint(directory: str | Path, *, resolution: int = 224, seed: int = 0) -> Path:
    """Write a tiny random PaliGemma 2 checkpoint into ``directory`` and return its path.

    The text decoder is a real Gemma 2 with everything the 3B has, at a size where a
    wrong engine shows: grouped-query attention (4 query heads on 2 KV heads), a sliding
    window (64) shorter than the prompt even at 224 px (256 image tokens), a query scalar
    unlike the head size (scaling by the wrong one shows), and weights
    scaled so attention scores and final logits reach their soft-caps. The output head is
    untied from the embeddings (and scaled) so that greedy output depends on the context
    and writes many distinct tokens, instead of repeating the token it was fed.
    """
    import torch
    from transformers import (
        Gemma2Config,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if resolution % 14:
        raise ValueError(f"resolution must be a multiple of 14, got {resolution}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    image_token_id = TINY_VOCABULARY.index("<image>")
    vocab_size = len(TINY_VOCABULARY)
    text = Gemma2Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,  # one sliding, one full layer
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=24,  # unlike head_dim (as in the 28B: 144 and 128)
        sliding_window=64,
        attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0,
        max_position_embeddings=8192,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    config = PaliGemmaConfig(
        vision_config=tiny_vision_config(resolution).to_dict(),
        text_config=text.to_dict(),
        image_token_index=image_token_id,
        vocab_size=vocab_size,
        projection_dim=64,
        hidden_size=64,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config).eval()
    with torch.no_grad():  # see the docstring: scores and logits at the soft-cap scale
        language = model.model.language_model
        for layer in language.layers:
            layer.self_attn.q_proj.weight.mul_(10.0)
            layer.self_attn.k_proj.weight.mul_(10.0)
        language.embed_tokens.weight.mul_(5.0)
        model.lm_head.weight.mul_(50.0)
    model.generation_config.eos_token_id = 1
    model.generation_config.pad_token_id = 0
    model.generation_config.bos_token_id = 2
    model.save_pretrained(out, safe_serialization=True)
    processor = tiny_processor(resolution)
    processor.save_pretrained(out)
    return out


def teacher_forced_logits(model: Any, processor: Any, request: Request, answer: list[int]) -> Any:
    """transformers' float32 logits after the prompt and after each ``answer`` token, from
    one forward pass (the reference an engine's logits are checked against), with Gemma 2's
    final soft-cap applied once whatever the transformers version
    (``docvlm.engines.gemma2``)."""
    import torch

    from docvlm.engines.gemma2 import missing_final_cap, soft_cap

    inputs = processor(
        images=[request.image], text=["<image>" + request.prompt], return_tensors="pt"
    )
    n = inputs["input_ids"].shape[1]
    ids = torch.cat([inputs["input_ids"], torch.tensor([answer])], dim=1)
    types = torch.cat([torch.zeros(1, n), torch.ones(1, len(answer))], dim=1).long()
    with torch.no_grad():
        output = model(
            input_ids=ids.to(model.device),
            pixel_values=inputs["pixel_values"].to(model.device, model.dtype),
            token_type_ids=types.to(model.device),  # the prompt bidirectional, the answer causal
            attention_mask=torch.ones_like(ids).to(model.device),
            use_cache=False,
        )
    return soft_cap(output.logits[0, n - 1 :].float(), missing_final_cap(model))


class ScriptedEngine:
    """A fake engine (no model): ``respond`` maps each request to the text to return
    (or to a whole ``Generation``, to script a confidence or a stop reason).

    Ships with the package, like httpx's MockTransport, so users can test their own code
    around docvlm without a model. ``requests`` records everything it was asked (with
    ``record=False`` nothing is kept, for long runs).
    """

    def __init__(
        self,
        respond: Callable[[Request], str | Generation],
        *,
        resolution: int = 448,
        checkpoint: str = "scripted",
        record: bool = True,
    ) -> None:
        self._respond = respond
        self._resolution = resolution
        self._checkpoint = checkpoint
        self._record = record
        self.requests: list[Request] = []

    @property
    def checkpoint(self) -> str:
        return self._checkpoint

    @property
    def resolution(self) -> int:
        return self._resolution

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        if self._record:
            self.requests.extend(requests)
        answers = [self._respond(request) for request in requests]
        return [a if isinstance(a, Generation) else Generation(text=a) for a in answers]


def scripted_generation(tokens: Sequence[tuple[str, float]], stop: Stop = "eos") -> Generation:
    """A ``Generation`` written token by token, as (text, log-probability) pairs, with the
    offsets and log-probabilities an engine reports: for a ``ScriptedEngine`` to answer
    with chosen confidences. A token of empty text (an end-of-sequence) writes nothing."""
    ends, written = [], 0
    for text, _ in tokens:
        written += len(text)
        ends.append(written)
    return Generation(
        text="".join(text for text, _ in tokens),
        token_ids=tuple(range(len(tokens))),
        logprobs=tuple(logprob for _, logprob in tokens),
        stop=stop,
        ends=tuple(ends),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m docvlm.testing", description=__doc__)
    parser.add_argument("directory", type=Path, help="where to write the checkpoint")
    parser.add_argument("--resolution", type=int, default=224, help="input size in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    args = parser.parse_args(argv)
    path = write_tiny_checkpoint(args.directory, resolution=args.resolution, seed=args.seed)
    print(path)


if __name__ == "__main__":
    main()
