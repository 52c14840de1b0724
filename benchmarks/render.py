"""Pages per second: docvlm's renderer against pdf2image's convert_from_path defaults.

What it does: renders the same PDFs (a generated 20-page scan and the corpus multi-page
PDFs) with pdf2image.convert_from_path at its defaults (200 dpi, poppler's pdftoppm) and
with docvlm.reading.render.load_pages at 200 dpi, in-process and through the render worker (the
default, with a per-page timeout), in the same process, and prints pages per second,
peak memory and the ratios.
Requirements: pip install -e ".[pdf2image]"; poppler-utils (pdftoppm) installed.
Run: python benchmarks/render.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docvlm.reading.pdf import RenderWorker  # noqa: E402
from docvlm.reading.render import PageImage, load_pages  # noqa: E402


def scan_pdf(path: Path, pages: int) -> Path:
    images = []
    for number in range(pages):
        image = Image.new("L", (1275, 1650), 255)
        draw = ImageDraw.Draw(image)
        for row in range(40):
            draw.text((100, 80 + row * 38), f"page {number} line {row}", fill=0)
        images.append(image)
    images[0].save(path, "PDF", resolution=150.0, save_all=True, append_images=images[1:])
    return path


def timed(render: Callable[[Path], int], pdfs: list[Path]) -> tuple[float, float]:
    tracemalloc.start()
    start = time.perf_counter()
    pages = sum(render(pdf) for pdf in pdfs)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return pages / elapsed, peak


def main() -> None:
    if shutil.which("pdftoppm") is None:
        raise SystemExit("pdftoppm (poppler-utils) is needed for the pdf2image baseline")
    from pdf2image import convert_from_path

    corpus = ROOT.parent / "shared/corpus/pdfs/multipage"
    with tempfile.TemporaryDirectory() as folder:
        pdfs = [scan_pdf(Path(folder) / "scan20.pdf", 20), *sorted(corpus.glob("*.pdf"))]

        def baseline(pdf: Path) -> int:
            return len(convert_from_path(str(pdf)))

        def in_process(pdf: Path) -> int:
            return sum(isinstance(p, PageImage) for p in load_pages(pdf, dpi=200))

        worker = RenderWorker(timeout=120)

        def with_worker(pdf: Path) -> int:
            return sum(isinstance(p, PageImage) for p in load_pages(pdf, dpi=200, reader=worker))

        with_worker(pdfs[0])  # start the worker outside the timing
        base_rate, base_peak = timed(baseline, pdfs)
        ours_rate, ours_peak = timed(in_process, pdfs)
        worker_rate, _ = timed(with_worker, pdfs)
        worker.shutdown()
    print(
        f"pdf2image convert_from_path (200 dpi): {base_rate:6.1f} pages/s, "
        f"peak Python memory {base_peak:6.0f} MB (all pages held)"
    )
    print(
        f"docvlm load_pages, in process:        {ours_rate:6.1f} pages/s, "
        f"peak Python memory {ours_peak:6.0f} MB (one page at a time)"
    )
    print(f"docvlm load_pages, render worker:     {worker_rate:6.1f} pages/s")
    print(
        f"ratio in process / pdf2image: {ours_rate / base_rate:.2f}x; "
        f"worker / pdf2image: {worker_rate / base_rate:.2f}x"
    )


if __name__ == "__main__":
    main()
