"""Pages per second: the local archive runner against the same job on a local Ray.

What it does: writes a folder of scan-like PDFs, converts it with the local runner
(``docvlm.archive.runner``, the baseline) and with ``docvlm.distributed.convert_dataset`` on a
local Ray started with ``num_cpus=2`` (one actor, then two actors of half a CPU each), all
with an engine stand-in of fixed latency per crop (no model: the engine's time is known,
so the numbers show what each runner adds around it). Prints pages/s for each and the
ratio to the local runner; each Ray figure includes its pipeline's start-up (actors
created, workers started), not ``ray.init``.
Requirements: pip install -e ".[ray]"
Run: python benchmarks/ray.py [--documents 16] [--pages 4] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# this file is named ray.py: without this, ``import ray`` would import it
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw  # noqa: E402

from docvlm import DocVLM, Settings  # noqa: E402
from docvlm.archive.pipeline import Options  # noqa: E402
from docvlm.archive.runner import run_job  # noqa: E402
from docvlm.engines import Engine, Generation, Request  # noqa: E402
from docvlm.reading.reads import TILE_OVERLAP  # noqa: E402
from docvlm.reading.regions import tile_boxes  # noqa: E402

LINE = "a line of text<loc0100><loc0100><loc0200><loc0900>"


class FixedLatency:
    """An engine that takes ``latency`` seconds per crop, as a GPU at a known rate."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    @property
    def checkpoint(self) -> str:
        return "stand-in"

    @property
    def resolution(self) -> int:
        return 448

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        time.sleep(self.latency * len(requests))
        return [Generation(text=LINE, stop="eos") for _ in requests]


class Factory:
    def __init__(self, latency: float) -> None:
        self.latency = latency

    def __call__(self, checkpoint: str, settings: Settings) -> Engine:
        return FixedLatency(self.latency)


def write_folder(folder: Path, documents: int, pages: int) -> None:
    for index in range(documents):
        images = []
        for number in range(pages):
            image = Image.new("L", (850, 1100), 255)
            draw = ImageDraw.Draw(image)
            for row in range(30):
                draw.text((60, 60 + row * 33), f"doc {index} page {number} line {row}", fill=0)
            images.append(image)
        images[0].save(
            folder / f"doc{index:03d}.pdf",
            "PDF",
            resolution=100.0,
            save_all=True,
            append_images=images[1:],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=16)
    parser.add_argument("--pages", type=int, default=4, help="pages per document")
    parser.add_argument("--latency", type=float, default=0.02, help="engine seconds per crop")
    args = parser.parse_args()

    import ray

    from docvlm.distributed import ScaleOptions, convert_dataset

    settings = Settings(dpi=72)  # a letter page: 612 x 792 px, 2 x 2 tiles of 448 px
    options = Options(tasks=("text",), dpi=72)
    factory = Factory(args.latency)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        write_folder(folder, args.documents, args.pages)
        started = time.perf_counter()
        with DocVLM(settings, checkpoint="stand-in", engine_factory=factory) as client:
            local = run_job(client, [folder], options, Path(tmp) / "local.parquet")
        local_seconds = time.perf_counter() - started
        local_rate = local.pages_done / local_seconds
        print(
            f"local runner          {local.pages_done} pages in {local_seconds:6.2f} s: "
            f"{local_rate:6.2f} pages/s (engine busy {local.engine_busy:.0%})"
        )
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            for actors in (1, 2):
                scale = ScaleOptions(actors=actors, cpus_per_actor=1 / actors, documents_per_call=2)
                started = time.perf_counter()
                summary = convert_dataset(
                    [folder],
                    Path(tmp) / f"ray-{actors}.parquet",
                    options,
                    scale=scale,
                    settings=settings,
                    checkpoint="stand-in",
                    engine_factory=factory,
                )
                seconds = time.perf_counter() - started
                rate = summary.pages_done / seconds
                print(
                    f"Ray, {actors} actor(s)       {summary.pages_done} pages in {seconds:6.2f} "
                    f"s: {rate:6.2f} pages/s, {rate / local_rate:.2f}x the local runner"
                )
        finally:
            ray.shutdown()
    crops = len(tile_boxes(612, 792, 448, TILE_OVERLAP))
    print(
        f"engine ceiling: {1 / (args.latency * crops):.2f} pages/s per engine "
        f"({args.latency * 1000:.0f} ms per crop, {crops} crops per page)"
    )


if __name__ == "__main__":
    main()
