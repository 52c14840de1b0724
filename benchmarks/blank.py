"""Blank paper: model requests and seconds with the ink measure against without it.

What it does: converts (task ``text``, the archive path ``convert_many``) the corpus's
scans (pdfs/good_scans, pdfs/multipage, pdfs/rotated: text pages and one real blank scan)
plus two made pages (a blank white A4 PNG at 300 dpi, and the same with scanner speckle),
twice in this process with the same engine: first as docvlm planned reads before issue 20
(every tile requested: the ink map is replaced by one that is inked everywhere), then with
the ink measure (``docvlm.reading.ink``). The engine is a stand-in that takes ``--seconds`` per
request (default 0.11 s: the measured prefill of one 896 px image on an H200, the least a
request costs) and answers a line of text; ``--tiny`` uses the tiny random checkpoint on
the CPU instead (real generation, slow). It prints requests and seconds of each run, per
source, and the ratios (after / before).

Requirements: pip install -e ".[dev]" (no model, no GPU); the shared corpus next to the
repository (../shared/corpus) or the bundled subset (tests/data/corpus).
Run: python benchmarks/blank.py [--seconds 0.11] [--dpi 150] [--tiny]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docvlm import DocVLM, Settings  # noqa: E402
from docvlm.engines import Engine, Generation, Request  # noqa: E402
from docvlm.reading import reads  # noqa: E402
from docvlm.reading.ink import InkMap  # noqa: E402
from docvlm.testing import ScriptedEngine  # noqa: E402

ANSWER = "<loc0100><loc0100><loc0200><loc0900> a line of text"


class StandIn(ScriptedEngine):
    """An engine that takes ``seconds`` per request and counts requests per source page."""

    def __init__(self, seconds: float) -> None:
        super().__init__(lambda request: ANSWER, resolution=896, record=False)
        self.seconds = seconds
        self.count = 0

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        self.count += len(requests)
        time.sleep(self.seconds * len(requests))
        return super().generate(requests)


class Counting:
    """Counts the requests a real engine is given."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.count = engine, 0
        self.checkpoint, self.resolution = engine.checkpoint, engine.resolution

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        self.count += len(requests)
        return list(self.engine.generate(requests))


class InkEverywhere(InkMap):
    """The planning before issue 20: every crop is requested."""

    @classmethod
    def of(cls, image: Image.Image) -> InkMap:
        import numpy as np

        return InkMap(np.ones((1, 1), dtype=bool), 10**9)


def sources(folder: Path) -> list[Path]:
    corpus = ROOT.parent / "shared" / "corpus"
    corpus = corpus if corpus.is_dir() else ROOT / "tests" / "data" / "corpus"
    found = [
        path
        for part in ("pdfs/good_scans", "pdfs/multipage", "pdfs/rotated")
        for path in sorted((corpus / part).glob("*"))
        if path.suffix in {".pdf", ".png"}
    ]
    blank = folder / "blank_a4_300dpi.png"
    Image.new("RGB", (2480, 3508), "white").save(blank, dpi=(300, 300))
    speckled = Image.new("L", (2480, 3508), 250)
    pixels, draw = speckled.load(), random.Random(1)
    assert pixels is not None
    for _ in range(8000):
        pixels[draw.randrange(2480), draw.randrange(3508)] = draw.randrange(90)
    speck = folder / "speckled_a4_300dpi.png"
    speckled.save(speck, dpi=(300, 300))
    return [*found, blank, speck]


def run(paths: list[Path], args: argparse.Namespace) -> dict[str, float]:
    """Requests and seconds per source, and in all."""
    per: dict[str, float] = {}
    settings = Settings(dpi=args.dpi, render_timeout=None)
    if args.tiny:
        from docvlm.engines import load_engine
        from docvlm.testing import write_tiny_checkpoint

        checkpoint = write_tiny_checkpoint(Path(args.folder) / "tiny", resolution=224)
        engine: StandIn | Counting = Counting(load_engine(str(checkpoint), settings))
    else:
        engine = StandIn(args.seconds)
    with DocVLM(settings, engine_factory=lambda c, s: engine, checkpoint="x") as client:
        started = time.perf_counter()
        for path in paths:
            before, clock = engine.count, time.perf_counter()
            (document,) = client.convert_many([path], max_new_tokens=args.tokens)
            assert document.status != "failure", (path, document.error)
            per[f"{path.name} requests"] = engine.count - before
            per[f"{path.name} seconds"] = time.perf_counter() - clock
        per["requests"] = engine.count
        per["seconds"] = time.perf_counter() - started
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.11, help="stand-in cost of a request")
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--tokens", type=int, default=None, help="max_new_tokens (--tiny: 8)")
    parser.add_argument("--tiny", action="store_true", help="the tiny checkpoint on the CPU")
    args = parser.parse_args()
    if args.tiny and args.tokens is None:
        args.tokens = 8
    with tempfile.TemporaryDirectory() as folder:
        args.folder = folder
        paths = sources(Path(folder))
        setattr(reads, "InkMap", InkEverywhere)  # noqa: B010 (the planning before)
        before = run(paths, args)
        setattr(reads, "InkMap", InkMap)  # noqa: B010
        after = run(paths, args)
    print(f"{'source':40s} {'requests before':>16s} {'after':>6s} {'s before':>9s} {'after':>7s}")
    for path in paths:
        name = path.name
        print(
            f"{name[:40]:40s} {before[name + ' requests']:16.0f} {after[name + ' requests']:6.0f}"
            f" {before[name + ' seconds']:9.2f} {after[name + ' seconds']:7.2f}"
        )
    print(
        f"{'all':40s} {before['requests']:16.0f} {after['requests']:6.0f}"
        f" {before['seconds']:9.2f} {after['seconds']:7.2f}"
    )
    print(f"requests ratio (after / before): {after['requests'] / before['requests']:.3f}")
    print(f"seconds ratio (after / before): {after['seconds'] / before['seconds']:.3f}")


if __name__ == "__main__":
    main()
