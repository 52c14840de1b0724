"""Where a prefill's time goes: image processing, SigLIP, projector, Gemma 2 prefill.

What it does: builds the random-weight 3B of ``benchmarks/generate.py`` (bf16, no
download), and for each resolution and batch size times, per image, each part of docvlm's
engine prefill separately (the processor on the CPU, the SigLIP tower, the projector, the
Gemma 2 layers over the whole prompt with the engine's attention, the output head), then
the engine's whole prefill and transformers' ``generate`` with a one-token budget in the
same process. Each part is given its FLOPs (matmuls and attention) and the TFLOP/s it
reached, so the table says which part is far from the card's peak. The issue's target
is at most 50 ms per 896 px image at batch >= 8 (an H200 reached 110 in August).

Requirements: a CUDA GPU (``--tiny`` runs the same code on the CPU's tiny checkpoint,
to check the script itself).
Run: python benchmarks/profile_prefill.py [--resolutions 896,448] [--batches 1,8]
         [--attention flex|eager] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.generate import random_3b, requests, tiny  # noqa: E402
from docvlm.engines import Request  # noqa: E402
from docvlm.engines.attention import Backend  # noqa: E402
from docvlm.engines.fast import PaliGemmaEngine  # noqa: E402
from docvlm.engines.hf import TransformersEngine  # noqa: E402


def clock(run: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``run`` after one warm-up call."""
    cuda = torch.cuda.is_available()
    run()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def linear_flops(module: Any, tokens: int) -> float:
    """2 x weights x tokens over the module's linear layers (its matmuls)."""
    weights = sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))
    return 2.0 * weights * tokens


def profile(
    model: Any, processor: Any, batch: list[Request], attention: Backend, repeats: int
) -> dict[str, Any]:
    engine = PaliGemmaEngine(model, processor, "profile", slots=len(batch), attention=attention)
    plain = TransformersEngine("profile", model, processor, str(model.device), None)
    inner = model.model
    size = len(batch)
    inputs = processor(
        images=[r.image for r in batch],
        text=["<image>" + r.prompt for r in batch],
        return_tensors="pt",
        padding="longest",
    )
    pixels = inputs["pixel_values"].to(model.device, model.dtype)
    n = int(inputs["input_ids"].shape[1])
    image_tokens = int(processor.image_seq_length)
    vision, text = inner.vision_tower, model.config.text_config
    vision_config = model.config.vision_config
    with torch.inference_mode():
        hidden = vision(pixels).last_hidden_state
        parts: dict[str, float] = {
            "processor (CPU)": clock(
                lambda: processor(
                    images=[r.image for r in batch],
                    text=["<image>" + r.prompt for r in batch],
                    return_tensors="pt",
                    padding="longest",
                ),
                repeats,
            ),
            "SigLIP": clock(lambda: vision(pixels), repeats),
            "projector": clock(lambda: inner.multi_modal_projector(hidden), repeats),
        }
        state = engine._buffers(engine._capacity(batch))
        slots = list(range(size))
        whole = clock(lambda: engine._prefill(state, slots, batch), repeats)
        parts["Gemma 2 prefill + head"] = max(
            whole - parts["SigLIP"] - parts["projector"] - parts["processor (CPU)"], 0.0
        )
        once = [Request(r.image, r.prompt, 1) for r in batch]
        generate = clock(lambda: plain.generate(once), repeats)
    vision_attention = 4.0 * image_tokens**2 * vision_config.hidden_size
    text_attention = 4.0 * n**2 * text.num_attention_heads * text.head_dim
    flops = {
        "processor (CPU)": 0.0,
        "SigLIP": linear_flops(vision, image_tokens)
        + vision_attention * vision_config.num_hidden_layers,
        "projector": linear_flops(inner.multi_modal_projector, image_tokens),
        "Gemma 2 prefill + head": linear_flops(inner.language_model, n)
        + text_attention * text.num_hidden_layers
        + 2.0 * model.lm_head.weight.numel(),
    }
    rows = [
        {
            "part": name,
            "ms_per_image": round(1e3 * seconds / size, 2),
            "share": round(seconds / whole, 3),
            "tflop_per_image": round(flops[name] / 1e12, 2),
            "tflop_per_s": round(flops[name] * size / seconds / 1e12, 1) if flops[name] else None,
        }
        for name, seconds in parts.items()
    ]
    return {
        "batch": size,
        "prompt_tokens": n,
        "parts": rows,
        "engine_prefill_ms_per_image": round(1e3 * whole / size, 2),
        "generate_prefill_ms_per_image": round(1e3 * generate / size, 2),
        "generate_over_engine": round(generate / whole, 2),
    }


def show(resolution: int, result: dict[str, Any]) -> None:
    print(f"\n{resolution} px, batch {result['batch']}, {result['prompt_tokens']} prompt tokens")
    print("| part | ms/image | share | TFLOP/image | TFLOP/s |\n|---|---|---|---|---|")
    for row in result["parts"]:
        rate = "-" if row["tflop_per_s"] is None else row["tflop_per_s"]
        print(
            f"| {row['part']} | {row['ms_per_image']} | {row['share']:.0%} | "
            f"{row['tflop_per_image']} | {rate} |"
        )
    print(
        f"| engine prefill | {result['engine_prefill_ms_per_image']} | | | |\n"
        f"| generate, 1 token | {result['generate_prefill_ms_per_image']} | | | |\n"
        f"generate / engine: {result['generate_over_engine']}x",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the CPU's tiny checkpoint")
    parser.add_argument("--resolutions", default="896,448")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--attention", default="flex", choices=["flex", "eager"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        if args.tiny:
            model, processor = tiny(Path(folder) / "tiny")
            sizes = [(224, model, processor)]
        elif not torch.cuda.is_available():
            raise SystemExit("needs a CUDA GPU; use --tiny on the CPU")
        else:
            sizes = [(int(r), None, None) for r in args.resolutions.split(",")]
        for resolution, model, processor in sizes:
            if model is None:
                model, processor = random_3b(resolution, torch.bfloat16)
            for size in batches:
                batch = requests(size, resolution, 1, ["ocr"])
                attention: Backend = "flex" if args.attention == "flex" else "eager"
                if model.device.type != "cuda":
                    attention = "eager"  # the CPU's flex is the slow unfused reference
                result = profile(model, processor, batch, attention, args.repeats)
                result["resolution"] = resolution
                show(resolution, result)
                results.append(result)
                if args.json:
                    Path(args.json).write_text(json.dumps(results, indent=2))
            del model, processor
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
