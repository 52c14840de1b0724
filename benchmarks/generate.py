"""Plain transformers ``generate`` against docvlm's engine, same model, same card, same run.

What it does: builds a PaliGemma 2 model, runs plain ``generate`` first and then
docvlm's engine on the same requests, and prints tokens/s, images/s and their ratio per
batch size, the engine's prefill time per image, and whether the greedy tokens are
identical (on a mixed batch: each request's tokens from the engine against ``generate``
on that request alone, the reference the engine promises to equal).

- default (GPU): a random-weight 3B model from the published paligemma2-3b-pt-896 config
  (no download), bf16, 896 px, 128 new tokens, batch 1 and 32. EOS is disabled so every
  sequence generates the full budget in both engines.
- ``--tiny``: the same comparison on the CPU with the tiny checkpoint of
  ``docvlm.testing``; prints ``identical: True`` when the tokens are equal.

Requirements: pip install -e . (a CUDA GPU for the default mode).
Run: python benchmarks/generate.py --tiny
     python benchmarks/generate.py [--resolution 896] [--batches 1,32] [--new-tokens 128]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from docvlm.engines import Request  # noqa: E402
from docvlm.engines.fast import PaliGemmaEngine  # noqa: E402
from docvlm.engines.hf import TransformersEngine  # noqa: E402

#: google/paligemma2-3b-pt-896 (text: Gemma 2 2B; vision: SigLIP So400m/14).
TEXT_3B = dict(
    hidden_size=2304,
    intermediate_size=9216,
    num_hidden_layers=26,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=256,
    query_pre_attn_scalar=256,
    sliding_window=4096,
    vocab_size=257216,
    final_logit_softcapping=30.0,
    attn_logit_softcapping=50.0,
    hidden_activation="gelu_pytorch_tanh",
    max_position_embeddings=8192,
)
VISION_3B = dict(
    hidden_size=1152,
    intermediate_size=4304,
    num_hidden_layers=27,
    num_attention_heads=16,
    patch_size=14,
    vision_use_head=False,
)


def random_3b(resolution: int, device: str) -> tuple[Any, Any]:
    from transformers import (
        Gemma2Config,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        SiglipVisionConfig,
    )

    from docvlm.testing import TINY_VOCABULARY, tiny_processor

    config = PaliGemmaConfig(
        text_config=Gemma2Config(**TEXT_3B).to_dict(),
        vision_config=SiglipVisionConfig(image_size=resolution, **VISION_3B).to_dict(),
        image_token_index=TINY_VOCABULARY.index("<image>"),
        projection_dim=2304,
        vocab_size=257216,
    )
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = PaliGemmaForConditionalGeneration(config).eval()
    torch.set_default_dtype(torch.float32)
    processor = tiny_processor(resolution)
    return model, processor


def tiny(directory: Path) -> tuple[Any, Any]:
    from docvlm import Settings
    from docvlm.engines.hf import load_model
    from docvlm.testing import write_tiny_checkpoint

    write_tiny_checkpoint(directory, resolution=224)
    model, processor, _ = load_model(str(directory), Settings(device="cpu"))
    return model, processor


def requests(count: int, resolution: int, budget: int, prompts: list[str]) -> list[Request]:
    out = []
    for i in range(count):
        image = Image.new("RGB", (resolution, resolution), (37 * i % 255, 90, 180))
        ImageDraw.Draw(image).text((20, 20 + i % 50), f"page {i}", fill="black")
        out.append(Request(image, prompts[i % len(prompts)], budget))
    return out


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(engine: Any, batch: list[Request]) -> tuple[float, list[Any]]:
    sync()
    start = time.perf_counter()
    out = engine.generate(batch)
    sync()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny checkpoint")
    parser.add_argument("--resolution", type=int, default=896)
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--new-tokens", type=int, default=128)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    with tempfile.TemporaryDirectory() as folder:
        if args.tiny:
            model, processor = tiny(Path(folder) / "tiny")
            resolution, device = 224, "cpu"
        else:
            if not torch.cuda.is_available():
                raise SystemExit("the default mode needs a CUDA GPU; use --tiny on the CPU")
            model, processor = random_3b(args.resolution, "cuda")
            resolution, device = args.resolution, "cuda"
        name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
        print(f"device: {name}; resolution {resolution}; {args.new_tokens} new tokens")
        plain = TransformersEngine("bench", model, processor, device)
        fast = PaliGemmaEngine(model, processor, "bench", slots=max(batches), repetition_span=None)
        if not args.tiny:  # random weights: make every sequence run its full budget
            plain._eos = fast._eos = -1
            model.generation_config.eos_token_id = None

        # correctness on a mixed batch: different prompts and budgets, fewer slots than requests
        mixed = requests(6, resolution, 24, ["ocr", "table html", "answer en what is it?"])
        mixed = [Request(r.image, r.prompt, 8 + 4 * i) for i, r in enumerate(mixed)]
        small = PaliGemmaEngine(model, processor, "bench", slots=4, repetition_span=None)
        small._eos = fast._eos
        ours = small.generate(mixed)
        reference = [plain.generate([r])[0] for r in mixed]
        identical = all(a.token_ids == b.token_ids for a, b in zip(ours, reference, strict=True))
        print(f"identical: {identical}  (mixed batch of {len(mixed)}, 4 slots)")

        for batch_size in batches:
            batch = requests(batch_size, resolution, args.new_tokens, ["ocr"])
            timed(plain, batch[:1])  # warm-up
            timed(fast, batch[:1])
            t_plain, out_plain = timed(plain, batch)
            t_fast, out_fast = timed(fast, batch)
            tokens_plain = sum(g.tokens for g in out_plain)
            tokens_fast = sum(g.tokens for g in out_fast)
            same = all(a.token_ids == b.token_ids for a, b in zip(out_plain, out_fast, strict=True))
            rate_plain, rate_fast = tokens_plain / t_plain, tokens_fast / t_fast
            print(
                f"batch {batch_size:>3}: generate {rate_plain:8.1f} tok/s "
                f"{batch_size / t_plain:6.2f} img/s | engine {rate_fast:8.1f} tok/s "
                f"{batch_size / t_fast:6.2f} img/s | ratio {rate_fast / rate_plain:5.2f}x "
                f"| same tokens: {same}"
            )

        prefill_batch = requests(8, resolution, 1, ["ocr"])
        one_token = PaliGemmaEngine(model, processor, "bench", slots=8, repetition_span=None)
        timed(one_token, prefill_batch[:1])
        t_prefill, _ = timed(one_token, prefill_batch)
        print(
            f"prefill: {1000 * t_prefill / len(prefill_batch):.1f} ms per image "
            f"(batch {len(prefill_batch)}, including image encoding)"
        )


if __name__ == "__main__":
    main()
