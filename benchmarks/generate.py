"""Plain transformers ``generate`` against docvlm's engine, same model, same card, same run.

What it does: builds a PaliGemma 2 model and, for each resolution and batch size, times
plain ``generate`` and then docvlm's engine on the same requests. Reported separately:

- prefill ms per image: a run with a 1-token budget (image encoding + prompt), per image;
- decode tokens/s: the decode steps only, (tokens(N) - tokens(1)) / (time(N) - time(1));
- images/s end to end with N new tokens (128 by default);

and the engine/generate ratio of each. Correctness first: each request's tokens from the
engine against ``generate`` on that request alone (the reference the engine promises to
equal); in float32 they must be identical, in bf16 the first divergence and the logprob
gap there are reported.

- default (GPU): a random-weight 3B model from the published paligemma2-3b-pt config
  (no download), bf16, 448 and 896 px, batch 1 and 32. EOS is disabled so every sequence
  generates its full budget in both engines. The engine is warmed up (compiled, graph
  captured) before anything is timed.
- ``--tiny``: the CPU check on the tiny checkpoint of ``docvlm.testing``: prints
  ``identical: True`` when tokens and logprobs equal ``generate``'s and the engine's
  teacher-forced logits equal transformers', and the fewest distinct tokens of a request.

Requirements: pip install -e . (a CUDA GPU for the default mode).
Run: python benchmarks/generate.py --tiny
     python benchmarks/generate.py [--resolutions 448,896] [--batches 1,32]
         [--new-tokens 128] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from docvlm.engines import Generation, Request  # noqa: E402
from docvlm.engines.fast import PaliGemmaEngine  # noqa: E402
from docvlm.engines.gemma2 import eager_text_attention  # noqa: E402
from docvlm.engines.hf import TransformersEngine  # noqa: E402
from docvlm.testing import teacher_forced_logits  # noqa: E402

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


def random_3b(resolution: int, dtype: torch.dtype, device: str = "cuda") -> tuple[Any, Any]:
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
    torch.set_default_dtype(dtype)
    with torch.device(device):
        model = PaliGemmaForConditionalGeneration(config).eval()
    torch.set_default_dtype(torch.float32)
    eager_text_attention(model)  # as docvlm loads every model (transformers 5.17 picks SDPA)
    model.generation_config.eos_token_id = None  # random weights: run every budget out
    return model, tiny_processor(resolution)


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


def timed(engine: Any, batch: list[Request]) -> tuple[float, list[Generation]]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = engine.generate(batch)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def measure(engine: Any, batch: list[Request]) -> dict[str, float]:
    """Prefill ms/image, decode tokens/s and end-to-end images/s for one batch."""
    once = [Request(r.image, r.prompt, 1) for r in batch]
    t_one, _ = timed(engine, once)
    t_all, out = timed(engine, batch)
    decoded = sum(g.tokens for g in out) - len(batch)
    return {
        "prefill_ms_per_image": round(1000 * t_one / len(batch), 2),
        "decode_tokens_per_s": round(decoded / max(t_all - t_one, 1e-9), 1),
        "images_per_s": round(len(batch) / t_all, 3),
        "seconds": round(t_all, 3),
    }


def divergence(ours: list[Generation], reference: list[Generation]) -> dict[str, Any]:
    """Where the engine's tokens first differ from ``generate``'s, and the logprob gap."""
    first: list[int | None] = []
    gaps = []
    for a, b in zip(ours, reference, strict=True):
        index = next(
            (i for i, (x, y) in enumerate(zip(a.token_ids, b.token_ids, strict=False)) if x != y),
            None,
        )
        if index is None and a.token_ids != b.token_ids:
            index = min(a.tokens, b.tokens)
        first.append(index)
        if index is not None and index < min(a.tokens, b.tokens):
            gaps.append(abs(a.logprobs[index] - b.logprobs[index]))
    return {
        "identical": all(i is None for i in first),
        "first_divergence": first,
        "logprob_gap_at_divergence": [round(g, 4) for g in gaps],
    }


def check_tiny() -> None:
    with tempfile.TemporaryDirectory() as folder:
        model, processor = tiny(Path(folder) / "tiny")
        plain = TransformersEngine("tiny", model, processor, "cpu", repetition_span=None)
        small = PaliGemmaEngine(model, processor, "tiny", slots=4, repetition_span=None)
        # mixed prompts and budgets through fewer slots than requests
        mixed = requests(6, 224, 0, ["ocr", "table html", "answer en what is it?"])
        mixed = [Request(r.image, r.prompt, 32 + 4 * i) for i, r in enumerate(mixed)]
        ours = small.generate(mixed)
        reference = [plain.generate([r])[0] for r in mixed]
        same = divergence(ours, reference)["identical"]
        close = all(
            max((abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)), default=0) < 1e-4
            for a, b in zip(ours, reference, strict=True)
        )
        gap = teacher_forced_gap(model, processor, small, mixed[:2])
        distinct = min(len(set(g.token_ids)) for g in ours)
        print(
            f"tokens equal: {same}; logprobs within 1e-4: {close}; "
            f"teacher-forced logits max |diff|: {gap:.2e}"
        )
        print(f"identical: {same and close and gap < 1e-3}  (mixed batch of {len(mixed)}, 4 slots)")
        print(f"min distinct tokens per request: {distinct}")
        batch = requests(8, 224, 32, ["ocr"])
        for size in (1, 8):
            a, b = measure(plain, batch[:size]), measure(small, batch[:size])
            print(f"batch {size}: generate {a}\n         engine   {b}")


def teacher_forced_gap(
    model: Any, processor: Any, engine: PaliGemmaEngine, batch: list[Request]
) -> float:
    """Largest |engine - transformers| logit under teacher forcing on fixed answers."""
    answers = [list(range(400 + 7 * i, 440 + 7 * i)) for i in range(len(batch))]
    gap = 0.0
    for request, answer, logits in zip(batch, answers, engine.score(batch, answers), strict=True):
        expected = teacher_forced_logits(model, processor, request, answer)
        gap = max(gap, float((logits.to(expected.device) - expected).abs().max()))
    return gap


def bench_gpu(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "runs": [],
    }

    def save() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))

    import transformers

    results["transformers"] = transformers.__version__
    batches = [int(b) for b in args.batches.split(",")]
    for resolution in (int(r) for r in args.resolutions.split(",")):
        model, processor = random_3b(resolution, torch.bfloat16)
        plain = TransformersEngine("bench", model, processor, "cuda", repetition_span=None)
        plain._eos = -1
        engine = PaliGemmaEngine(
            model,
            processor,
            "bench",
            slots=max(batches),
            repetition_span=None,
            compile=args.compile,
        )
        engine.eos = -1
        start = time.perf_counter()
        engine.warmup(engine._capacity(requests(1, resolution, args.new_tokens, ["ocr"])))
        for rows in (1, 2, 4, 8):  # each prefill shape compiles its kernel once
            timed(engine, requests(rows, resolution, 2, ["ocr"]))
        warm = round(time.perf_counter() - start, 1)
        print(f"{resolution} px: engine warm-up (compile, capture) {warm} s", flush=True)
        # bf16 correctness: each request against generate alone
        check = requests(4, resolution, 32, ["ocr", "table html"])
        report = divergence(engine.generate(check), [plain.generate([r])[0] for r in check])
        print(f"{resolution} px bf16 vs generate: {report}", flush=True)
        results["runs"].append({"resolution": resolution, "warmup_s": warm, "bf16_check": report})
        save()
        for size in batches:
            batch = requests(size, resolution, args.new_tokens, ["ocr"])
            timed(plain, [Request(batch[0].image, batch[0].prompt, 2)])  # warm-up
            row: dict[str, Any] = {
                "resolution": resolution,
                "batch": size,
                "new_tokens": args.new_tokens,
            }
            try:
                row["generate"] = measure(plain, batch)
            except torch.cuda.OutOfMemoryError as error:
                row["generate"] = {"error": f"out of memory: {str(error).splitlines()[0]}"}
                torch.cuda.empty_cache()
            row["engine"] = measure(engine, batch)
            if "error" not in row["generate"]:
                row["ratio"] = {
                    key: round(row["engine"][key] / row["generate"][key], 2)
                    for key in ("decode_tokens_per_s", "images_per_s")
                }
                row["ratio"]["prefill"] = round(
                    row["generate"]["prefill_ms_per_image"] / row["engine"]["prefill_ms_per_image"],
                    2,
                )
            print(json.dumps(row), flush=True)
            results["runs"].append(row)
            save()
        del model, plain, engine
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU check with the tiny checkpoint")
    parser.add_argument("--resolutions", default="448,896")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument(
        "--compile", action="store_true", help="also torch.compile the engine's decode step"
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.tiny:
        check_tiny()
    elif not torch.cuda.is_available():
        raise SystemExit("the default mode needs a CUDA GPU; use --tiny on the CPU")
    else:
        bench_gpu(args)


if __name__ == "__main__":
    main()
