"""TEDS pairs per second: docvlm.eval.teds against a straightforward implementation.

What it does: scores the PubTabNet reference pairs (../shared/corpus) with
docvlm.eval.teds, then with a straightforward implementation of the same definition
(PubTabNet's algorithm as written: APTED, a pure-Python Levenshtein computed on every
rename, no caching, no shortcut for identical tables), in the same process, checks that
both agree to 1e-9 and prints pairs per second and the ratio.
Requirements: pip install -e ".[dev]"; ../shared/corpus present.
Run: python benchmarks/metrics.py [--pairs 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from apted import APTED, Config
from lxml import html

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docvlm.eval import teds  # noqa: E402


def levenshtein(a: list[str], b: list[str]) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


class Node:
    def __init__(self, tag: str, colspan: Any, rowspan: Any, content: Any) -> None:
        self.tag, self.colspan, self.rowspan, self.content = tag, colspan, rowspan, content
        self.children: list[Node] = []


class Costs(Config):  # type: ignore[misc]
    def rename(self, a: Node, b: Node) -> float:
        if a.tag != b.tag or a.colspan != b.colspan or a.rowspan != b.rowspan:
            return 1.0
        if a.tag == "td" and (a.content or b.content):
            return levenshtein(a.content, b.content) / max(len(a.content), len(b.content))
        return 0.0


def tokens(node: Any, out: list[str]) -> None:
    out.append(f"<{node.tag}>")
    if node.text is not None:
        out.extend(node.text)
    for child in node.getchildren():
        tokens(child, out)
    if node.tag != "unk":
        out.append(f"</{node.tag}>")
    if node.tag != "td" and node.tail is not None:
        out.extend(node.tail)


def tree(node: Any, structure_only: bool) -> Node:
    if node.tag == "td":
        cell: list[str] = []
        if not structure_only:
            tokens(node, cell)
            cell = cell[1:-1]
        return Node(
            "td", int(node.attrib.get("colspan", "1")), int(node.attrib.get("rowspan", "1")), cell
        )
    new = Node(node.tag, None, None, None)
    new.children = [tree(child, structure_only) for child in node.getchildren()]
    return new


def straightforward_teds(pred: str, true: str, structure_only: bool = False) -> float:
    parser = html.HTMLParser(remove_comments=True, encoding="utf-8")
    p = html.fromstring(pred, parser=parser).xpath("body/table")
    t = html.fromstring(true, parser=parser).xpath("body/table")
    if not p or not t:
        return 0.0
    n = max(len(p[0].xpath(".//*")), len(t[0].xpath(".//*")))
    distance = APTED(tree(p[0], structure_only), tree(t[0], structure_only), Costs())
    return 1.0 - float(distance.compute_edit_distance()) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40, help="reference pairs to score")
    args = parser.parse_args()
    reference = ROOT.parent / "shared/corpus/tables/pubtabnet/teds_reference.json"
    pairs = json.loads(reference.read_text())["pairs"][: args.pairs]

    start = time.perf_counter()
    baseline = [straightforward_teds(p["pred"], p["true"]) for p in pairs]
    base_time = time.perf_counter() - start
    start = time.perf_counter()
    ours = [teds(p["pred"], p["true"]) for p in pairs]
    our_time = time.perf_counter() - start
    differing = [p for p in pairs if p["pred"] != p["true"]]
    start = time.perf_counter()
    for p in differing:
        straightforward_teds(p["pred"], p["true"])
    base_diff = time.perf_counter() - start
    start = time.perf_counter()
    for p in differing:
        teds(p["pred"], p["true"])
    our_diff = time.perf_counter() - start

    worst = max(abs(a - b) for a, b in zip(ours, baseline, strict=True))
    worst_ref = max(abs(a - p["teds"]) for a, p in zip(ours, pairs, strict=True))
    print(
        f"pairs: {len(pairs)}  max |docvlm - straightforward| = {worst:.2e}  "
        f"max |docvlm - official reference| = {worst_ref:.2e}"
    )
    print(f"straightforward: {len(pairs) / base_time:8.2f} pairs/s")
    print(f"docvlm.eval.teds: {len(pairs) / our_time:8.2f} pairs/s")
    print(
        f"ratio: {base_time / our_time:.2f}x  (on the {len(differing)} pairs that differ, "
        f"without the identity shortcut: {base_diff / our_diff:.2f}x)"
    )
    if worst > 1e-9:
        raise SystemExit("the two implementations disagree")


if __name__ == "__main__":
    main()
