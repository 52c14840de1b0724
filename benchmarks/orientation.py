"""Page orientation and skew: docvlm's measure on turned and skewed real scans.

What it does: renders the corpus's real pages (pdfs/good_scans, pdfs/multipage,
pdfs/rotated, tables/fintabnet_like: text pages, a map, photographs, a blank scan) at
``--dpi`` (150), measures each page as it lies, then turns it a quarter turn
counter-clockwise 1-3 times (docvlm should answer rotation 90, 180, 270 relative to the
page as it lies) and skews copies by ``--angles``. Real scans are already a little skewed,
so a skewed copy is scored against its own upright page: the error is
``measured(copy) - measured(page) - applied``.

It prints, per page and in total: turns right, unsure (left as is) and wrong; skews
within 0.2 degrees and the mean error; and the CPU seconds per page of the measure (one
thread, ``time.process_time``), all measured in this process. Where the ``tesseract``
binary is on the PATH it runs Tesseract's orientation detection (``--psm 0``, what
OCRmyPDF's ``--rotate-pages`` uses) on the same turned pages, side by side. A page whose
upright measure is unsure is not scored for turns (nothing to compare against) but is
reported, with what each turn gave (it must stay unsure, never turn).

Requirements: pip install -e . (numpy, Pillow); the shared corpus next to the repository
(../shared/corpus) or the bundled subset (tests/data/corpus); tesseract is optional.
Run: python benchmarks/orientation.py [--dpi 150] [--angles -8 -3 -1 0.5 2 5 12]
[--no-tesseract]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from docvlm.reading.orient import MIN_CONFIDENCE, measure_orientation  # noqa: E402
from docvlm.reading.pdf import InProcessPdf  # noqa: E402
from docvlm.reading.render import PageImage, load_pages  # noqa: E402
from docvlm.settings import Settings  # noqa: E402

FOLDERS = ("pdfs/good_scans", "pdfs/multipage", "pdfs/rotated", "tables/fintabnet_like")


def corpus() -> Path:
    for path in (ROOT.parent / "shared" / "corpus", ROOT / "tests" / "data" / "corpus"):
        if path.is_dir():
            return path
    raise SystemExit("no corpus: ../shared/corpus or tests/data/corpus")


def pages(dpi: int) -> list[tuple[str, Image.Image]]:
    """Every page of the corpus's scans, rendered as docvlm renders them."""
    found = []
    limits = Settings().limits()
    for folder in FOLDERS:
        for path in sorted((corpus() / folder).glob("*")):
            if path.suffix.lower() not in {".pdf", ".png", ".jpg", ".tif", ".tiff"}:
                continue
            reader = InProcessPdf()
            try:
                for page in load_pages(path, dpi=dpi, limits=limits, reader=reader):
                    if isinstance(page, PageImage):
                        found.append((f"{path.name}:{page.number}", page.image))
            except Exception as error:  # a corrupt file is not this benchmark's concern
                print(f"skip {path.name}: {error}", file=sys.stderr)
            finally:
                reader.close()
    return found


def skewed(image: Image.Image, angle: float) -> Image.Image:
    """``image`` turned counter-clockwise by ``angle`` degrees (its lines rise by it)."""
    return image.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor="white")


def tesseract_turn(image: Image.Image) -> int | None:
    """Tesseract's answer (clockwise turn to make upright), or None when it gives none."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "page.png"
        image.save(path)
        done = subprocess.run(
            ["tesseract", str(path), "-", "--psm", "0"], capture_output=True, text=True
        )
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith("Rotate:"):
            return int(line.split(":")[1]) % 360
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--angles", type=float, nargs="+", default=[-8, -3, -1, 0.5, 2, 5, 12])
    parser.add_argument("--no-tesseract", action="store_true", help="skip the side by side")
    args = parser.parse_args()
    tesseract = None if args.no_tesseract else shutil.which("tesseract")
    right = unsure = wrong = 0
    tess_right = tess_wrong = tess_none = 0
    errors: list[float] = []
    seconds: list[float] = []

    def measure(image: Image.Image):  # type: ignore[no-untyped-def]
        start = time.process_time()
        found = measure_orientation(image)
        seconds.append(time.process_time() - start)
        return found

    for name, image in pages(args.dpi):
        upright = measure(image)
        sure = upright.confidence >= MIN_CONFIDENCE
        line = [f"{name:40.40}", f"as it lies: {upright.rotation:3}° ({upright.confidence:.2f})"]
        turns = []
        for turn in (0, 90, 180, 270):
            turned = image.rotate(turn, expand=True) if turn else image
            found = measure(turned)
            expected = (upright.rotation + turn) % 360
            if not sure:
                turns.append(
                    "-" if found.confidence < MIN_CONFIDENCE else f"TURNED {found.rotation}"
                )
                wrong += found.confidence >= MIN_CONFIDENCE
                continue
            if found.confidence < MIN_CONFIDENCE:
                unsure += 1
                turns.append("unsure")
            elif found.rotation == expected:
                right += 1
                turns.append("ok")
            else:
                wrong += 1
                turns.append(f"WRONG {found.rotation}")
            if tesseract:
                answer = tesseract_turn(turned)
                tess_none += answer is None
                tess_right += answer == expected
                tess_wrong += answer is not None and answer != expected
        line.append("turns " + ",".join(turns))
        if upright.skew_confidence >= MIN_CONFIDENCE:
            errs = [
                measure(skewed(image, angle)).skew - upright.skew - angle for angle in args.angles
            ]
            errors += errs
            line.append("skew errors " + " ".join(f"{e:+.2f}" for e in errs))
        print("  ".join(line))
    scored = right + unsure + wrong
    print()
    print(f"turns: {right}/{scored} right, {unsure} unsure (left as is), {wrong} wrong")
    if tesseract:
        total = tess_right + tess_wrong + tess_none
        print(
            f"tesseract --psm 0: {tess_right}/{total} right, {tess_none} no answer, "
            f"{tess_wrong} wrong (same pages)"
        )
    else:
        print("tesseract: skipped (--no-tesseract) or not on the PATH: no side by side")
    if errors:
        within = sum(abs(e) <= 0.2 for e in errors)
        mean = sum(abs(e) for e in errors) / len(errors)
        print(
            f"skew: {within}/{len(errors)} within 0.2°, mean error {mean:.3f}°, "
            f"worst {max(abs(e) for e in errors):.2f}°"
        )
    seconds.sort()
    print(
        f"seconds per page (CPU, one thread): mean {sum(seconds) / len(seconds):.3f}, "
        f"median {seconds[len(seconds) // 2]:.3f}, max {seconds[-1]:.3f} over {len(seconds)}"
    )


if __name__ == "__main__":
    main()
