"""Reading on a CPU: plain ``generate`` in fp32 against docvlm's CPU configurations.

What it does, in one run:

1. writes a random-weight PaliGemma 2 3B checkpoint (the published config, no download;
   bf16 safetensors in a temporary folder), or with ``--tiny`` the tiny test checkpoint;
2. memory: each configuration loads that checkpoint through docvlm's own loading code in
   a fresh child process and reads one 448 px image; its peak RSS is reported against
   the size of the weights;
3. speed, in this process, on the same weights and the same image: plain ``generate``
   in fp32 (the old CPU default) first, then bf16 with unpacked layers, int8 weight-only
   and the chosen default (bf16, oneDNN-prepacked layers). For each: prefill seconds per
   image (SigLIP + the whole prompt + the first token), decode tokens/s (timed per step),
   and the text task's seconds per page computed from both (a letter page at 150 dpi
   cut into checkpoint-sized tiles, ``--page-tokens`` answer tokens per page). Greedy
   tokens are compared with fp32: first divergence and fp32's logprob gap there;
4. resolution: the chosen configuration's prefill at 896 px against 448 px.

EOS is disabled (random weights), so every configuration decodes the same number of steps.
Timings on a shared machine are noisy: read the ratios, and rerun when one looks off.

Requirements: pip install -e . ; about 14 GiB free memory for the fp32 baseline (3B).
Run: python benchmarks/cpu.py --tiny              # seconds, what CI runs
     python benchmarks/cpu.py --layer             # one 3B-sized layer, the variants interleaved
     python benchmarks/cpu.py                     # 3B, 448 px, about 15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "benchmarks"))  # last: benchmarks/parsers.py must not shadow parsers

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from torch import nn  # noqa: E402

from docvlm import Settings  # noqa: E402
from docvlm.engines.cpu import cpu_features, cpu_plan  # noqa: E402
from docvlm.engines.linear import Int8Linear, PackedLinear  # noqa: E402
from docvlm.reading.regions import tile_boxes  # noqa: E402

PAGE = (1275, 1650)  # US letter at 150 dpi, docvlm's default rendering


def page_image(resolution: int) -> Image.Image:
    image = Image.new("RGB", (resolution, resolution), "white")
    draw = ImageDraw.Draw(image)
    for row in range(12):
        draw.text((16, 16 + 30 * row), f"line {row}: 12.5 mg/kg and 3.1%", fill="black")
    return image


def write_checkpoint(folder: Path, tiny: bool, resolution: int) -> Path:
    """A checkpoint directory docvlm loads like any other."""
    if tiny:
        from docvlm.testing import write_tiny_checkpoint

        return write_tiny_checkpoint(folder / "tiny", resolution=224)
    from generate import random_3b  # the published 3B config, built in bf16

    torch.manual_seed(0)
    model, processor = random_3b(resolution, torch.bfloat16, device="cpu")
    out = folder / "random-3b"
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    del model
    return out


# --- memory: one child process per configuration ------------------------------------


def child(checkpoint: str, config: str, new_tokens: int) -> None:
    """Load through docvlm's code, read one image, print peak RSS as JSON."""
    from docvlm.engines import Request
    from docvlm.engines.hf import TransformersEngine, load_for_inference

    settings = {
        "fp32": Settings(device="cpu", dtype="float32"),
        "bf16": Settings(device="cpu"),
        "int8": Settings(device="cpu", quantization="int8"),
    }[config]
    peak_anonymous = [0]

    def sample() -> None:  # anonymous memory: what must fit in RAM (file pages can go)
        while True:
            status = Path("/proc/self/status").read_text().split()
            anonymous = int(status[status.index("RssAnon:") + 1]) * 1024
            peak_anonymous[0] = max(peak_anonymous[0], anonymous)
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    model, processor, device = load_for_inference(checkpoint, settings)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    engine = TransformersEngine(checkpoint, model, processor, device, repetition_span=None)
    engine._eos = -1
    model.generation_config.eos_token_id = None
    resolution = int(processor.image_processor.size["height"])
    engine.generate([Request(page_image(resolution), "ocr", new_tokens)])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"loaded": loaded, "peak": peak, "anonymous": peak_anonymous[0]}))


def weight_bytes(checkpoint: Path) -> int:
    return sum(p.stat().st_size for p in checkpoint.glob("*.safetensors"))


def memory(checkpoint: Path, new_tokens: int) -> dict[str, dict[str, Any]]:
    bf16_bytes = weight_bytes(checkpoint)  # written in bf16 (3B); the tiny one is fp32
    out = {}
    for config in ("fp32", "bf16", "int8"):
        command = [sys.executable, __file__, "--child", config, str(checkpoint)]
        command += ["--new-tokens", str(new_tokens)]
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        if run.returncode:
            raise SystemExit(f"memory run {config} failed:\n{run.stderr[-3000:]}")
        out[config] = json.loads(run.stdout.strip().splitlines()[-1])
        out[config]["checkpoint_bytes"] = bf16_bytes
    return out


# --- speed: in this process, the same weights ---------------------------------------


class Recorder:
    """A logits processor placed last: step times and fp32 log-probabilities."""

    def __init__(self, keep: bool) -> None:
        self.times: list[float] = []
        self.logprobs: list[torch.Tensor] = []
        self.keep = keep

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.times.append(time.perf_counter())
        if self.keep:
            self.logprobs.append(scores[0].float().log_softmax(-1))
        return scores


def run(model: Any, processor: Any, image: Image.Image, new_tokens: int, keep: bool) -> dict:
    from transformers import LogitsProcessor, LogitsProcessorList

    recorder = type("R", (Recorder, LogitsProcessor), {})(keep)
    inputs = processor(images=[image], text=["<image>ocr"], return_tensors="pt")
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=new_tokens,
            do_sample=False,
            logits_processor=LogitsProcessorList([recorder]),
        )
    times = recorder.times
    return {
        "prefill_s": times[0] - start,
        "decode_tok_s": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0,
        "tokens": out[0, inputs["input_ids"].shape[1] :].tolist(),
        "logprobs": recorder.logprobs,
    }


@contextmanager
def swapped(model: nn.Module, plan: dict[str, Callable[[nn.Linear], nn.Module]]) -> Iterator[None]:
    """Swap the linear layers under each named submodule; put the originals back after."""
    saved: list[tuple[nn.Module, str, nn.Module]] = []

    def visit(module: nn.Module, make: Callable[[nn.Linear], nn.Module]) -> None:
        for name, child_module in list(module.named_children()):
            if isinstance(child_module, nn.Linear):
                saved.append((module, name, child_module))
                setattr(module, name, make(child_module))
            else:
                visit(child_module, make)

    for path, make in plan.items():
        target = model.get_submodule(path) if path else model
        if isinstance(target, nn.Linear):
            parent, _, name = path.rpartition(".")
            owner = model.get_submodule(parent) if parent else model
            saved.append((owner, name, target))
            setattr(owner, name, make(target))
        else:
            visit(target, make)
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def divergence(reference: dict, other: dict) -> tuple[int | None, float]:
    """First step where greedy tokens differ, and fp32's logprob gap there (its top token
    against the token the other configuration picked)."""
    for step, (a, b) in enumerate(zip(reference["tokens"], other["tokens"], strict=False)):
        if a != b:
            logprobs = reference["logprobs"][step]
            return step, float(logprobs[a] - logprobs[b])
    return None, 0.0


def seconds_per_page(prefill: float, rate: float, resolution: int, page_tokens: int) -> float:
    tiles = len(tile_boxes(*PAGE, resolution))
    return tiles * prefill + page_tokens / rate


def speed(checkpoint: Path, args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """The rows, fp32 first (the reference), each as soon as it is measured."""
    from docvlm.engines.hf import load_model

    model, processor, _ = load_model(str(checkpoint), Settings(device="cpu", dtype="float32"))
    model.generation_config.eos_token_id = None
    resolution = int(processor.image_processor.size["height"])
    image = page_image(resolution)
    warm = args.tiny  # a 3B step takes seconds: first-call costs are noise there
    if warm:
        run(model, processor, image, 2, keep=False)  # allocator, oneDNN primitives
    yield {
        "config": "fp32, plain generate (old default)",
        **run(model, processor, image, args.new_tokens, keep=True),
    }
    model.to(torch.bfloat16)  # in place, one tensor at a time
    language = "model.language_model"
    configs: list[tuple[str, dict[str, Callable[[nn.Linear], nn.Module]]]] = [
        ("bf16, prepacked (chosen default)", {"": PackedLinear}),
        (
            "int8 weight-only (quantization=int8)",
            {
                language: lambda linear: Int8Linear(linear, torch.bfloat16),
                "lm_head": lambda linear: Int8Linear(linear, torch.bfloat16),
                "model.vision_tower": PackedLinear,
                "model.multi_modal_projector": PackedLinear,
            },
        ),
        ("bf16, unpacked layers", {}),
    ]
    for name, plan in configs:
        with swapped(model, plan):
            if warm:
                run(model, processor, image, 2, keep=False)
            row = {"config": name, **run(model, processor, image, args.new_tokens, keep=False)}
            if name.endswith("(chosen default)") and args.high_resolution:
                row["prefill_high_s"] = prefill_at(model, resolution * 2)
            yield row


def prefill_at(model: Any, resolution: int) -> float:
    """Prefill at another input size: the vision embeddings rebuilt for it (random)."""
    from transformers.models.siglip.modeling_siglip import SiglipVisionEmbeddings

    from docvlm.testing import tiny_processor

    vision = model.model.vision_tower
    original = vision.embeddings
    config = type(model.config.vision_config)(
        **{**model.config.vision_config.to_dict(), "image_size": resolution}
    )
    vision.embeddings = SiglipVisionEmbeddings(config).to(model.dtype)
    try:
        return float(
            run(model, tiny_processor(resolution), page_image(resolution), 1, keep=False)[
                "prefill_s"
            ]
        )
    finally:
        vision.embeddings = original


def report(row: dict[str, Any], base: dict[str, Any], resolution: int, page_tokens: int) -> None:
    base_page = seconds_per_page(base["prefill_s"], base["decode_tok_s"], resolution, page_tokens)
    first, gap = divergence(base, row)
    page = seconds_per_page(row["prefill_s"], row["decode_tok_s"], resolution, page_tokens)
    tokens = "identical" if first is None else f"first divergence at token {first}"
    tokens += "" if first is None else f", fp32 logprob gap {gap:.3f}"
    print(
        f"{row['config']:<38} prefill {row['prefill_s']:7.2f} s "
        f"({base['prefill_s'] / row['prefill_s']:4.1f}x) | decode "
        f"{row['decode_tok_s']:6.2f} tok/s ({row['decode_tok_s'] / base['decode_tok_s']:4.1f}x)"
        f" | text page {page:7.1f} s ({base_page / page:4.1f}x) | {tokens}",
        flush=True,
    )
    if "prefill_high_s" in row:
        high, size = row["prefill_high_s"], resolution * 2
        tiles = (len(tile_boxes(*PAGE, size)), len(tile_boxes(*PAGE, resolution)))
        page_high = seconds_per_page(high, row["decode_tok_s"], size, page_tokens)
        print(
            f"{'  the same at ' + str(size) + ' px':<38} prefill {high:7.2f} s "
            f"({high / row['prefill_s']:.1f}x the {resolution} px one) | text page "
            f"{page_high:7.1f} s ({tiles[0]} tiles a page against {tiles[1]})",
            flush=True,
        )


def layer(reps: int = 30) -> None:
    """One 3B-sized layer (2304 -> 9216): fp32, bf16 unpacked, bf16 prepacked, int8, the
    variants interleaved and the best of ``reps`` kept (robust to a shared machine)."""
    torch.manual_seed(0)
    fp32 = nn.Linear(2304, 9216, bias=False)
    bf16 = nn.Linear(2304, 9216, bias=False).to(torch.bfloat16)
    bf16.weight.data.copy_(fp32.weight.data)
    variants = {
        "fp32": (fp32, torch.float32),
        "bf16 unpacked": (bf16, torch.bfloat16),
        "bf16 prepacked": (PackedLinear(bf16), torch.bfloat16),
        "int8 weight-only": (Int8Linear(bf16, torch.bfloat16), torch.bfloat16),
    }
    for rows in (1, 1030):
        best = dict.fromkeys(variants, float("inf"))
        inputs = torch.randn(1, rows, 2304)
        for _ in range(reps if rows == 1 else 3):
            for name, (module, dtype) in variants.items():
                x = inputs.to(dtype)
                start = time.perf_counter()
                with torch.inference_mode():
                    module(x)
                best[name] = min(best[name], time.perf_counter() - start)
        print(f"{rows:>5} tokens: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in best.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny checkpoint, seconds")
    parser.add_argument("--new-tokens", type=int, default=16, help="decode steps timed")
    parser.add_argument("--page-tokens", type=int, default=1000, help="answer tokens a page")
    parser.add_argument(
        "--no-high",
        dest="high_resolution",
        action="store_false",
        help="skip the prefill at twice the resolution",
    )
    parser.add_argument(
        "--no-memory",
        dest="memory",
        action="store_false",
        help="skip the memory runs (child processes)",
    )
    parser.add_argument("--checkpoint", type=Path, help="reuse a checkpoint written before")
    parser.add_argument("--layer", action="store_true", help="one 3B-sized layer, seconds")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[1], args.child[0], args.new_tokens)
        return
    if args.layer:
        layer()
        return
    meminfo = Path("/proc/meminfo").read_text().split()
    free = int(meminfo[meminfo.index("MemAvailable:") + 1]) / 2**20
    if not args.tiny and free < 14:
        raise SystemExit(f"the fp32 baseline of the 3B needs about 14 GiB free; {free:.1f} free")
    features = cpu_features()
    plan = cpu_plan(Settings(device="cpu"), features)
    print(
        f"CPU: torch capability {features.capability}, avx512_bf16={features.avx512_bf16}, "
        f"amx_bf16={features.amx_bf16}, {features.cores} cores; default: {plan.describe()}"
    )
    resolution = 224 if args.tiny else 448
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        checkpoint = args.checkpoint or write_checkpoint(Path(folder), args.tiny, resolution)
        size = weight_bytes(checkpoint) / 2**30
        print(f"checkpoint: {size:.2f} GiB, ready in {time.perf_counter() - start:.0f} s")
        for config, used in memory(checkpoint, 4).items() if args.memory else ():
            print(
                f"memory {config}: peak RSS {used['peak'] / 2**30:.2f} GiB loading and "
                f"reading one image ({used['loaded'] / 2**30:.2f} GiB after loading); peak "
                f"anonymous {used.get('anonymous', 0) / 2**30:.2f} GiB (without the "
                "checkpoint's mmap'd file pages)",
                flush=True,
            )
        print(f"\n{resolution} px, {args.new_tokens} new tokens, {torch.get_num_threads()} threads")
        rows = speed(checkpoint, args)
        base = next(rows)
        for row in itertools.chain([base], rows):  # printed as measured
            report(row, base, resolution, args.page_tokens)


if __name__ == "__main__":
    main()
