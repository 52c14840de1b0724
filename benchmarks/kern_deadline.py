"""CPU seconds ``parse_kern`` takes on the longest real scores, against its deadline.

What it does: reads every ``.krn`` file of music21's corpus and of ../shared/corpus, picks
the longest (by notes and rests) of each collection, and times ``parse_kern`` on each
whole score, with and without MusicXML: CPU seconds of the calling thread (what
``MAX_KERN_SECONDS`` counts) and wall seconds. It prints the slowest and the margin the
deadline leaves, then a hostile text (one measure of 4,000 sixteenths, quadratic in
music21's export) stopped by a short deadline.
Requirements: pip install -e ".[dev]" (music21); ../shared/corpus present.
Run: python benchmarks/kern_deadline.py [--per-collection 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parsers import KernParseError, normalise_kern, parse_kern  # noqa: E402
from parsers.kern import MAX_KERN_SECONDS  # noqa: E402


def tokens(kern: str) -> int:
    """Notes and rests, each chord member counted."""
    return sum(
        len(value.split())
        for line in kern.splitlines()
        if not line.startswith(("*", "!", "="))
        for value in line.split("\t")
        if value != "."
    )


def read(path: Path) -> str:
    """The file's text: UTF-8, or Latin-1 as some of music21's Palestrina files are."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def longest_scores(per_collection: int) -> list[Path]:
    import music21

    roots = [Path(music21.__file__).parent / "corpus", ROOT.parent / "shared/corpus/music"]
    by_collection: dict[Path, list[tuple[int, Path]]] = {}
    for root in roots:
        for path in root.rglob("*.krn"):
            if "invalid" in path.parent.name:
                continue
            kern, _ = normalise_kern(read(path))
            by_collection.setdefault(path.parent, []).append((tokens(kern), path))
    chosen = []
    for scores in by_collection.values():
        chosen += [path for _, path in sorted(scores, reverse=True)[:per_collection]]
    return chosen


def timed(text: str, musicxml: bool) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.thread_time()
    score = parse_kern(text, musicxml=musicxml, timeout=None)
    return time.thread_time() - cpu, time.perf_counter() - wall, score.note_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-collection", type=int, default=2)
    args = parser.parse_args()
    parse_kern("**kern\n4c\n*-\n")  # music21 imported before anything is timed
    slowest = 0.0
    for path in longest_scores(args.per_collection):
        text = read(path)
        cpu_fast, wall_fast, notes = timed(text, musicxml=False)
        cpu, wall, _ = timed(text, musicxml=True)
        slowest = max(slowest, cpu)
        print(
            f"{path.parent.name}/{path.name}: {len(text.splitlines()):,} lines, "
            f"{tokens(text):,} notes and rests ({notes:,} music21 notes): "
            f"{cpu_fast:.1f} s CPU ({wall_fast:.1f} s wall) without MusicXML, "
            f"{cpu:.1f} s CPU ({wall:.1f} s wall) with",
            flush=True,
        )
    print(
        f"slowest real score: {slowest:.1f} s CPU; deadline {MAX_KERN_SECONDS:g} s CPU "
        f"({MAX_KERN_SECONDS / slowest:.1f} x)"
    )
    hostile = "**kern\n" + "16c\n" * 4_000 + "*-\n"
    wall = time.perf_counter()
    try:
        parse_kern(hostile, timeout=5)
        print("hostile text: parsed within 5 s")
    except KernParseError as error:
        print(f"hostile text: {error.reason} ({time.perf_counter() - wall:.1f} s wall)")


if __name__ == "__main__":
    main()
