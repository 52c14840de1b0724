"""Peak memory converting a 500-page PDF against a 10-page one (bounded memory).

What it does: writes two scanned-looking PDFs (10 and 500 pages, letter size), converts
each in a fresh subprocess with the `text` task through a scripted engine (no model, so
only docvlm's own pipeline is measured: rendering, tiling, parsing, results), and prints
the peak RSS of the converting process and of the render worker for both, and the ratio.
Requirements: pip install -e .
Run: python benchmarks/memory.py [--pages 500]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

CHILD = r"""
import json, sys
from docvlm import DocVLM, Settings
from docvlm.testing import ScriptedEngine

def peak_mb(pid="self"):
    # VmHWM starts afresh at exec; ru_maxrss would include the parent's size at fork
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

engine = ScriptedEngine(lambda r: "<loc0100><loc0100><loc0140><loc0900> some words",
                        resolution=896, record=False)
with DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="x") as client:
    document = client.convert(sys.argv[1], tasks=["text"])
    worker = peak_mb(client._worker._process.pid) if client._worker else float("nan")
    print(json.dumps({"pages": len(document.pages), "self_mb": peak_mb(), "worker_mb": worker}))
"""


def write_pdf(path: Path, pages: int) -> None:
    def page(number: int) -> Image.Image:
        image = Image.new("L", (1275, 1650), 255)
        draw = ImageDraw.Draw(image)
        for row in range(40):
            draw.text((100, 80 + row * 38), f"page {number} line {row} of a scanned report", fill=0)
        return image

    first = page(1)
    first.save(
        path,
        "PDF",
        resolution=150.0,
        save_all=True,
        append_images=(page(i) for i in range(2, pages + 1)),
    )


def measure(path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        small, large = Path(folder) / "small.pdf", Path(folder) / "large.pdf"
        write_pdf(small, 10)
        write_pdf(large, args.pages)
        a, b = measure(small), measure(large)
    for label, m in (("10 pages", a), (f"{args.pages} pages", b)):
        print(
            f"{label:>10}: converted {m['pages']:.0f} pages, peak RSS {m['self_mb']:.0f} MB "
            f"(render worker {m['worker_mb']:.0f} MB)"
        )
    ratio = b["self_mb"] / a["self_mb"]
    worker = b["worker_mb"] / a["worker_mb"] if a["worker_mb"] else float("nan")
    total = (b["self_mb"] + b["worker_mb"]) / (a["self_mb"] + a["worker_mb"])
    print(
        f"ratio {args.pages}/10: {total:.2f}x for both processes together "
        f"(converting process {ratio:.2f}x, render worker {worker:.2f}x); target <= 1.3x"
    )


if __name__ == "__main__":
    main()
