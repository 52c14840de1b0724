"""Fine-tuning step time and peak GPU memory of PaliGemma 2 3B: LoRA against QLoRA.

What it does: writes a checkpoint with random weights in the exact shape of
``google/paligemma2-3b-pt-{448,896}`` (SigLIP-So400m + Gemma 2 2B; no download, so it
runs on a machine without network), then runs ``docvlm.finetune.finetune`` for a few
steps on synthetic table images for each resolution and mode, and prints seconds per
step and peak memory, with QLoRA's ratio to LoRA (the baseline, run in the same process).

Requirements: a CUDA GPU (an H100 holds every case at batch 1), ``docvlm[train]`` and
bitsandbytes for QLoRA.

Run: ``python benchmarks/finetune_gpu.py [--resolutions 448 896] [--steps 10]
[--warmup 3] [--target-tokens 512] [--json out.json]``. The first ``--warmup`` steps of
each case (allocator growth, cuBLAS and bitsandbytes kernel selection) and any step that
ran the held-out evaluation are not timed; the figure is the median of the other steps.
Memory is split into what stays allocated between steps (weights, LoRA gradients and
optimizer state) and the peak above it (activations), to show what keeps QLoRA's up.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # first: benchmarks/parsers.py must not shadow parsers

#: google/paligemma2-3b-pt-* (config.json on the hub): Gemma 2 2B over SigLIP-So400m/14.
TEXT_3B = {
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "final_logit_softcapping": 30.0,
    "attn_logit_softcapping": 50.0,
    "vocab_size": 257216,
}
VISION_SO400M = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "patch_size": 14,
    "vision_use_head": False,
}


def write_random_3b(directory: Path, resolution: int) -> Path:
    """A 3B-shaped checkpoint with random bf16 weights and docvlm's tiny tokenizer."""
    import torch
    from transformers import (
        Gemma2Config,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        SiglipVisionConfig,
    )

    from docvlm.testing import TINY_VOCABULARY, tiny_processor

    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(image_size=resolution, **VISION_SO400M).to_dict(),
        text_config=Gemma2Config(
            pad_token_id=0, eos_token_id=1, bos_token_id=2, **TEXT_3B
        ).to_dict(),
        image_token_index=TINY_VOCABULARY.index("<image>"),
        vocab_size=TEXT_3B["vocab_size"],
        projection_dim=TEXT_3B["hidden_size"],
        hidden_size=TEXT_3B["hidden_size"],
    )
    with torch.device("cuda"):
        model = PaliGemmaForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(directory, safe_serialization=True)
    tiny_processor(resolution).save_pretrained(directory)
    del model
    torch.cuda.empty_cache()
    return directory


def write_data(directory: Path, count: int, target_tokens: int) -> Path:
    """Synthetic table images whose targets are about ``target_tokens`` tokens long."""
    from docvlm.finetune.data import write_records
    from docvlm.finetune.tables import random_table_html, render_table

    records = []
    for index in range(count):
        rng = random.Random(index)
        image, target = render_table(random_table_html(rng), rng)
        while len(target) < target_tokens:  # the tiny vocabulary: about a token a character
            target += target
        path = directory / f"t{index}.png"
        image.save(path)
        records.append({"image": str(path), "target": target[:target_tokens]})
    data = directory / "train.jsonl"
    write_records(records, data)
    return data


def run_case(
    base: Path, data: Path, out: Path, qlora: bool, steps: int, warmup: int
) -> dict[str, Any]:
    import statistics

    import torch

    from docvlm.finetune import FinetuneOptions, Progress, finetune
    from docvlm.settings import Settings

    stamps: list[tuple[float, bool]] = []  # (end of step, whether it evaluated)
    resident: list[int] = []

    def tick(progress: Progress) -> None:
        torch.cuda.synchronize()
        stamps.append((time.perf_counter(), progress.held_out is not None))
        resident.append(torch.cuda.memory_allocated())

    torch.cuda.reset_peak_memory_stats()
    options = FinetuneOptions(
        task="table",
        data=data,
        output=out,
        base=str(base),
        max_steps=steps,
        batch_size=1,
        grad_accum=1,
        lora_rank=16,
        learning_rate=1e-4,
        quantization="nf4" if qlora else "none",
        precision="bfloat16",
        gradient_checkpointing=True,
        save="adapter",
    )
    finetune(options, Settings(device="cuda"), tick)
    timed = [
        b - a
        for (a, _), (b, evaluated) in itertools.pairwise(stamps[warmup - 1 :])
        if not evaluated
    ]
    if not timed:
        raise SystemExit(f"--steps {steps} leaves no timed step after --warmup {warmup}")
    peak = torch.cuda.max_memory_allocated()
    return {
        "seconds_per_step": statistics.median(timed),
        "fastest_step": min(timed),
        "timed_steps": len(timed),
        "peak_gib": peak / 2**30,
        "resident_gib": resident[-1] / 2**30,
        "activations_gib": (peak - resident[-1]) / 2**30,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[448, 896])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    parser.add_argument("--target-tokens", type=int, default=512)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="docvlm-ft-bench-") as folder:
        root = Path(folder)
        data = write_data(root, 8, args.target_tokens)
        for resolution in args.resolutions:
            base = write_random_3b(root / f"base-{resolution}", resolution)
            lora = run_case(base, data, root / "out-lora", False, args.steps, args.warmup)
            qlora = run_case(base, data, root / "out-qlora", True, args.steps, args.warmup)
            row = {"resolution": resolution, "lora": lora, "qlora": qlora}
            results.append(row)
            print(
                f"{resolution} px, batch 1, {args.target_tokens} target tokens, median of "
                f"{lora['timed_steps']} steps: "
                f"LoRA {lora['seconds_per_step']:.3f} s/step, {lora['peak_gib']:.1f} GiB "
                f"({lora['resident_gib']:.1f} resident + {lora['activations_gib']:.1f}); "
                f"QLoRA {qlora['seconds_per_step']:.3f} s/step, {qlora['peak_gib']:.1f} GiB "
                f"({qlora['resident_gib']:.1f} resident + {qlora['activations_gib']:.1f}); "
                f"QLoRA/LoRA time x{qlora['seconds_per_step'] / lora['seconds_per_step']:.2f}, "
                f"memory x{qlora['peak_gib'] / lora['peak_gib']:.2f}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
