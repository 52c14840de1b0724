"""Archive conversion: the overlapped runner against the sequential loop, same files, same run.

What it does: writes scan-like PDFs (10 pages each), then converts them (task ``text``,
output to JSON Lines) twice in this process with the same engine stand-in: a
``ScriptedEngine`` that sleeps a fixed time per batch of ``--slots`` requests, like a GPU
would, and answers real OCR text that is parsed. First the sequential loop docvlm had
(``convert`` one document after another: render, generate, parse, write, in turn), then
``docvlm.archive.runner`` (rendering ahead in worker processes, one request stream into the
engine, parsing and writing on another thread). The stand-in's time per page defaults to
the CPU's own render + parse + write time per page, measured first with an instant engine.
It prints pages/s, the fraction of the wall time the engine was busy, and the ratio.
Then it measures the runner's peak RSS (this process and its render workers) over 10 and
over 500 pages, each in a fresh process, and prints their ratio.

Requirements: pip install -e ".[dev]" (no model, no GPU).
Run: python benchmarks/pipeline.py [--documents 30] [--slots 8] [--skip-rss]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docvlm import DocVLM, Settings  # noqa: E402
from docvlm.archive.output import open_sink  # noqa: E402
from docvlm.archive.pipeline import Options  # noqa: E402
from docvlm.archive.runner import Run  # noqa: E402
from docvlm.engines import Generation, Request  # noqa: E402
from docvlm.testing import ScriptedEngine  # noqa: E402

DPI = 40  # a 8.5 x 11 in page is 340 x 440 px: one 448 px tile, one request per page
ANSWER = "".join(
    f"line {n} of the page with some words<loc{40 * n:04d}><loc0050><loc{40 * n + 30:04d}>"
    "<loc0900>;"
    for n in range(20)
)


class StandIn(ScriptedEngine):
    """An engine that takes ``seconds`` per batch of up to ``slots`` requests."""

    def __init__(self, seconds: float, slots: int) -> None:
        super().__init__(lambda request: ANSWER, resolution=448, record=False)
        self.seconds, self.slots = seconds, slots
        self.busy = 0.0
        self.started = time.perf_counter()
        self.first: float | None = None  # when the first request came
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        started = time.perf_counter()
        self.first = self.first or started
        time.sleep(self.seconds * math.ceil(len(requests) / self.slots))
        answers = super().generate(requests)
        with self._lock:
            self.busy += time.perf_counter() - started
        return answers


def scan_pdf(path: Path, pages: int) -> Path:
    images = []
    for number in range(pages):
        image = Image.new("L", (850, 1100), 255)
        draw = ImageDraw.Draw(image)
        for row in range(40):
            draw.text((60, 40 + row * 25), f"page {number} line {row} of the scan", fill=0)
        images.append(image)
    images[0].save(path, "PDF", resolution=100.0, save_all=True, append_images=images[1:])
    return path


def _client(engine: StandIn, slots: int) -> DocVLM:
    settings = Settings(dpi=DPI, batch_size=slots)
    return DocVLM(settings, engine_factory=lambda c, s: engine, checkpoint="stand-in")


def sequential(files: list[Path], engine: StandIn, slots: int, out: Path) -> tuple[float, int]:
    """docvlm's loop before the runner: one document after another, stage after stage."""
    start = engine.started = time.perf_counter()
    pages = 0
    with _client(engine, slots) as client, open_sink(out) as sink:
        for file in files:
            document = client.convert(file, tasks=("text",))
            sink.write(document)
            sink.commit()
            pages += len(document.pages)
    return time.perf_counter() - start, pages


def overlapped(files: list[Path], engine: StandIn, slots: int, out: Path) -> tuple[float, int]:
    start = engine.started = time.perf_counter()
    with _client(engine, slots) as client:
        run = Run(client, Options(tasks=("text",), dpi=DPI), out, redo=True)
        pages = sum(len(d.pages) for d in run.documents(files))
    return time.perf_counter() - start, pages


def rss_child(folder: Path, slots: int) -> None:
    """Run the runner over ``folder`` and print peak RSS (MiB): this process, children."""
    engine = StandIn(0.001, slots)
    with tempfile.TemporaryDirectory() as scratch:
        overlapped(sorted(folder.glob("*.pdf")), engine, slots, Path(scratch) / "out.jsonl")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"self_mib": own, "worker_mib": children}))


def peak_rss(folder: Path, slots: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--rss-child", str(folder), "--slots", str(slots)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=30, help="10-page PDFs to convert")
    parser.add_argument("--slots", type=int, default=8, help="requests per engine batch")
    parser.add_argument("--seconds-per-page", type=float, help="stand-in time per page")
    parser.add_argument("--skip-rss", action="store_true", help="skip the 10 vs 500 pages RSS")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.slots)
        return
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        files = [scan_pdf(folder / f"doc{i:03d}.pdf", 10) for i in range(args.documents)]
        cpu_time, pages = sequential(
            files, StandIn(0.0, args.slots), args.slots, folder / "c.jsonl"
        )
        cpu_per_page = cpu_time / pages
        per_page = args.seconds_per_page or cpu_per_page
        print(f"{pages} pages; CPU render + parse + write: {1000 * cpu_per_page:.1f} ms/page")
        print(f"stand-in: {1000 * per_page * args.slots:.0f} ms per batch of {args.slots}")
        results = {}
        for name, loop in (("sequential", sequential), ("overlapped", overlapped)):
            engine = StandIn(per_page * args.slots, args.slots)
            seconds, count = loop(files, engine, args.slots, folder / f"{name}.jsonl")
            results[name] = count / seconds
            assert engine.first is not None
            steady = seconds - (engine.first - engine.started)
            print(
                f"{name:>10}: {count / seconds:6.2f} pages/s, engine busy "
                f"{engine.busy / seconds:6.1%} of the run, {engine.busy / steady:6.1%} from "
                f"its first request ({engine.first - engine.started:.1f} s of start-up: "
                "render worker, first page)"
            )
        print(
            f"ratio overlapped / sequential: {results['overlapped'] / results['sequential']:.2f}x"
        )
        if args.skip_rss:
            return
        small, large = folder / "small", folder / "large"
        small.mkdir()
        large.mkdir()
        scan_pdf(small / "doc.pdf", 10)
        for index in range(50):
            scan_pdf(large / f"doc{index:02d}.pdf", 10)
        rss_small, rss_large = peak_rss(small, args.slots), peak_rss(large, args.slots)
        print(
            f"peak RSS, 10 pages: {rss_small['self_mib']:.0f} MiB "
            f"(render workers {rss_small['worker_mib']:.0f} MiB); "
            f"500 pages: {rss_large['self_mib']:.0f} MiB "
            f"(render workers {rss_large['worker_mib']:.0f} MiB); "
            f"ratio {rss_large['self_mib'] / rss_small['self_mib']:.2f}x"
        )


if __name__ == "__main__":
    main()
