"""A tiny checkpoint that trains: for trying the whole fine-tuning path on a CPU.

``docvlm.testing.write_tiny_checkpoint`` writes a model small enough to run every stage
in a test, with weights scaled to test the engine, not to train. This one keeps its
tokenizer, processor and vision tower and has a wider decoder of its own (128 wide, 4
heads, freshly initialised: about 0.6 M parameters), at 112 px so that a step is cheap;
it learns a real PubTabNet table in about a hundred steps. It ships ``docvlm_training.json`` with
the settings a model trained from random weights needs (all weights, a high rate, no
warm-up); ``docvlm finetune --base DIR`` picks them up, and any option overrides them.

Run it as ``python -m docvlm.finetune.tiny DIR``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from docvlm.finetune.options import BASE_DEFAULTS_FILE

__all__ = ["TINY_TRAINING", "write_trainable_checkpoint"]

#: What the tiny model trains well with (written to its docvlm_training.json).
TINY_TRAINING: dict[str, float | int] = {
    "lora_rank": 0,
    "learning_rate": 3e-3,
    "label_smoothing": 0.0,
    "batch_size": 4,
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
    seed: int = 0,
) -> Path:
    """Write the trainable tiny checkpoint into ``directory`` and return its path."""
    import torch
    from transformers import (
        Gemma2Config,
        GenerationConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
    )

    from docvlm.testing import write_tiny_checkpoint

    out = write_tiny_checkpoint(directory, resolution=resolution, seed=seed)
    small = PaliGemmaConfig.from_pretrained(out)  # its vocabulary and vision tower
    ids = small.text_config
    text = Gemma2Config(
        vocab_size=ids.vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden_size // heads,
        query_pre_attn_scalar=hidden_size // heads,
        sliding_window=4096,  # the whole prompt and answer: learning needs no window here
        max_position_embeddings=8192,
        pad_token_id=ids.pad_token_id,
        eos_token_id=ids.eos_token_id,
        bos_token_id=ids.bos_token_id,
    )
    config = PaliGemmaConfig(
        vision_config=small.vision_config.to_dict(),
        text_config=text.to_dict(),
        image_token_index=small.image_token_index,
        vocab_size=ids.vocab_size,
        projection_dim=hidden_size,
        hidden_size=hidden_size,
    )
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig.from_pretrained(out)
    for stale in out.glob("*.safetensors"):
        stale.unlink()
    model.save_pretrained(out, safe_serialization=True)
    (out / BASE_DEFAULTS_FILE).write_text(json.dumps(TINY_TRAINING, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m docvlm.finetune.tiny", description=__doc__)
    parser.add_argument("directory", type=Path, help="where to write the checkpoint")
    parser.add_argument("--resolution", type=int, default=112, help="input size in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    args = parser.parse_args(argv)
    print(write_trainable_checkpoint(args.directory, resolution=args.resolution, seed=args.seed))


if __name__ == "__main__":
    main()
