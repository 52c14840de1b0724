"""Items per second of each parser on the corpus, next to the bare library call it wraps.

What it does: runs parse_table on the 20 PubTabNet examples, parse_smiles on the 800 NCI
and ZINC SMILES, parse_kern on the four kern scores of the shared corpus and
parse_locations on generated detection output, and prints each rate with the rate of a
baseline in the same process (lxml parse, RDKit MolFromSmiles, music21 parse without
MusicXML export, one regex pass). With --worst it times each parser on the slowest inputs
its size limits allow (tests/parsers/worst_cases.py), wall and CPU seconds, next to the
bare library call on the same text (kern has no size limit: its cases run into a 2 s
deadline, while music21 alone on the same text, the baseline, may take minutes).
Requirements: pip install -e ".[dev]"; ../shared/corpus present.
Run: python benchmarks/parsers.py [--repeat 3] [--worst]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "parsers"))


def rate(function: Callable[[str], object], items: Sequence[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            function(item)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def worst() -> None:
    import re

    from lxml import html as lxml_html
    from music21 import converter
    from rdkit import Chem, RDLogger
    from worst_cases import WORST

    from parsers import ParseError

    RDLogger.DisableLog("rdApp.*")
    loc = re.compile(r"<loc(\d{4})>")
    baselines: dict[str, tuple[str, Callable[[str], object]]] = {
        "table": ("lxml.html", lxml_html.fragments_fromstring),
        "smiles": ("MolFromSmiles", Chem.MolFromSmiles),
        "kern": ("music21 parse only", lambda k: converter.parseData(k, format="humdrum")),
        "text": ("regex findall", loc.findall),
        "locations": ("regex findall", loc.findall),
    }

    def timed(function: Callable[[str], object], text: str) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        with contextlib.suppress(ParseError, ValueError):
            function(text)
        return time.perf_counter() - wall, time.process_time() - cpu

    print(f"{'worst case':<46}{'chars':>8}{'wall s':>8}{'cpu s':>7}  {'baseline':<19}{'wall s':>7}")
    for name, (function, text) in WORST.items():
        wall, cpu = timed(function, text)
        base_name, baseline = baselines[name.split(":")[0]]
        base_wall, _ = timed(baseline, text)
        print(f"{name:<46}{len(text):>8}{wall:>8.2f}{cpu:>7.2f}  {base_name:<19}{base_wall:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worst", action="store_true", help="time the worst cases instead")
    args = parser.parse_args()
    if args.worst:
        worst()
        return

    from lxml import html as lxml_html
    from music21 import converter
    from rdkit import Chem, RDLogger
    from test_table import pubtabnet_html

    import parsers

    RDLogger.DisableLog("rdApp.*")
    examples = [
        json.loads(line)
        for line in (CORPUS / "tables/pubtabnet/examples/PubTabNet_Examples.jsonl")
        .read_text()
        .splitlines()
        if line.strip()
    ]
    tables = [pubtabnet_html(e) for e in examples]
    smiles_dir = CORPUS / "molecules/smiles"
    smiles = [
        line.split()[0]
        for name in ("nci_first300.smi", "zinc.leads.500.q.smi")
        for line in (smiles_dir / name).read_text().splitlines()
        if line.strip()
    ]
    kerns = [p.read_text(encoding="utf-8") for p in sorted((CORPUS / "music/kern").glob("*.krn"))]
    detections = [
        " ; ".join(
            f"<loc{i:04d}><loc{i + 1:04d}><loc{i + 9:04d}><loc{i + 20:04d}> table"
            for i in range(0, 900, 37)
        )
    ] * 200
    loc = re.compile(r"<loc(\d{4})>")

    rows = [
        ("parse_table", tables, parsers.parse_table, "lxml.html", lxml_html.fragments_fromstring),
        ("parse_smiles", smiles, parsers.parse_smiles, "MolFromSmiles", Chem.MolFromSmiles),
        (
            "parse_kern",
            kerns,
            parsers.parse_kern,
            "music21 parse only",
            lambda k: converter.parseData(k, format="humdrum"),
        ),
        (
            "parse_kern(musicxml=False)",
            kerns,
            lambda k: parsers.parse_kern(k, musicxml=False),
            "music21 parse only",
            lambda k: converter.parseData(k, format="humdrum"),
        ),
        (
            "parse_locations",
            detections,
            lambda t: parsers.parse_locations(t, 896, 896),
            "regex findall",
            loc.findall,
        ),
    ]
    print(f"{'parser':<28}{'items':>7}{'items/s':>12}  {'baseline':<20}{'items/s':>12}{'ratio':>8}")
    for name, items, function, base_name, baseline in rows:
        ours = rate(function, items, args.repeat)
        base = rate(baseline, items, args.repeat)
        print(
            f"{name:<28}{len(items):>7}{ours:>12.1f}  {base_name:<20}{base:>12.1f}"
            f"{ours / base:>8.2f}"
        )


if __name__ == "__main__":
    main()
