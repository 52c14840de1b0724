"""A tiny checkpoint that trains: for trying the whole fine-tuning path on a CPU.

``docvlm.testing.write_tiny_checkpoint`` writes a model small enough to run every stage
in a test, with weights scaled to test the engine, not to train. This one shares its
tokenizer and processor, at 112 px so that a step is cheap, with a decoder (128 wide, 2
layers, 4 heads) and a vision tower (128 wide, 2 layers) of its own, about 0.9 M parameters.

A random vision tower sees every scanned page as nearly the same picture: pages are mostly
white paper, so the random features of two different tables are 99% alike (mean cosine
over the corpus's 20 PubTabNet tables), and the decoder learns to write one memorised
answer whatever the image. A trained SigLIP answers to ink, not paper; the tiny tower is
initialised to do the same (a white patch embeds to zero, the patch signal outweighs the
position embedding), which brings the features of different tables down to 36% alike.
With that, and every example in each step (a batch of 8), it learns five real PubTabNet
tables in 400 steps (200 with ``patch_gain=30``: ``tests/finetune/test_correction_loop.py``)
and six drawn molecules in 250, each read back exactly
(``tests/finetune/test_finetune_learns.py``).

It ships ``docvlm_training.json`` with the settings a model trained from random weights
needs (all weights, a high rate, no warm-up, no label smoothing); ``docvlm finetune
--base DIR`` picks them up, and any option overrides them.

Run it as ``python -m docvlm.finetune.tiny DIR``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from docvlm.finetune.options import BASE_DEFAULTS_FILE

__all__ = ["TINY_TRAINING", "write_trainable_checkpoint"]

#: What the tiny model trains well with (written to its docvlm_training.json).
TINY_TRAINING: dict[str, float | int] = {
    "lora_rank": 0,
    "learning_rate": 3e-3,
    "label_smoothing": 0.0,
    "batch_size": 8,  # a handful of examples, all in every step: see the module docstring
    "grad_accum": 1,
    "warmup_fraction": 0.0,
    "epochs": 100,
}


def write_trainable_checkpoint(
    directory: str | Path,
    *,
    resolution: int = 112,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 4,
    vision_size: int = 128,
    patch_gain: float = 10.0,
    position_scale: float = 0.1,
    seed: int = 0,
) -> Path:
    """Write the trainable tiny checkpoint into ``directory`` and return its path."""
    import torch
    from transformers import Gemma2Config, PaliGemmaConfig, PaliGemmaForConditionalGeneration

    from docvlm.testing import TINY_VOCABULARY, tiny_processor, tiny_vision_config

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    special = {
        "pad_token_id": TINY_VOCABULARY.index("<pad>"),
        "eos_token_id": TINY_VOCABULARY.index("<eos>"),
        "bos_token_id": TINY_VOCABULARY.index("<bos>"),
    }
    text = Gemma2Config(
        vocab_size=len(TINY_VOCABULARY),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden_size // heads,
        query_pre_attn_scalar=hidden_size // heads,
        sliding_window=4096,  # the whole prompt and answer: learning needs no window here
        max_position_embeddings=8192,
        **special,
    )
    config = PaliGemmaConfig(
        vision_config=tiny_vision_config(resolution, vision_size).to_dict(),
        text_config=text.to_dict(),
        image_token_index=TINY_VOCABULARY.index("<image>"),
        vocab_size=len(TINY_VOCABULARY),
        projection_dim=hidden_size,
        hidden_size=hidden_size,
    )
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config).eval()
    _see_ink(model.model.vision_tower.embeddings, patch_gain, position_scale)
    for name, value in special.items():
        setattr(model.generation_config, name, value)
    model.save_pretrained(out, safe_serialization=True)
    tiny_processor(resolution).save_pretrained(out)
    (out / BASE_DEFAULTS_FILE).write_text(json.dumps(TINY_TRAINING, indent=2) + "\n")
    return out


def _see_ink(embeddings: Any, gain: float, position_scale: float) -> None:
    """Make the random patch embedding answer to ink, not paper: a white patch embeds to
    zero (the bias cancels the weights' response to it) and the patch signal outweighs the
    position embedding, which would otherwise make every mostly-white page look alike."""
    import torch

    with torch.no_grad():
        weight = embeddings.patch_embedding.weight
        weight.mul_(gain)
        white = 1.0  # a white pixel after the processor's (x - 0.5) / 0.5
        embeddings.patch_embedding.bias.copy_(-white * weight.sum(dim=(1, 2, 3)))
        embeddings.position_embedding.weight.mul_(position_scale)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m docvlm.finetune.tiny", description=__doc__)
    parser.add_argument("directory", type=Path, help="where to write the checkpoint")
    parser.add_argument("--resolution", type=int, default=112, help="input size in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    args = parser.parse_args(argv)
    print(write_trainable_checkpoint(args.directory, resolution=args.resolution, seed=args.seed))


if __name__ == "__main__":
    main()
