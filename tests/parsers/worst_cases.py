"""The slowest inputs each parser accepts within its documented size limits.

Shared by ``test_worst_cases.py`` (which runs them and checks their values) and
``benchmarks/parsers.py --worst`` (which times them). Each case is (parser, text).
"""

from __future__ import annotations

from collections.abc import Callable

from parsers import MAX_INPUT_CHARS, parse_kern, parse_locations, parse_smiles, parse_table
from parsers import parse_text as parse_ocr
from parsers.smiles import MAX_RING_ATOMS, MAX_RINGS, MAX_SMILES_CHARS
from parsers.table import MAX_CELLS, MAX_SPAN

Parser = Callable[[str], object]
#: rows (and columns) of the largest square grid
SQUARE = int(MAX_CELLS**0.5)
#: The kern cases run under this deadline (CPU seconds): the mechanism that bounds every
#: call by ``MAX_KERN_SECONDS``, made short so that the tests stay quick.
KERN_SECONDS = 2.0


def _ring_label(number: int) -> str:
    return f"%{number}" if number > 9 else str(number)


def acene(rings: int) -> str:
    """Linearly fused benzene rings, the case RDKit's aromaticity perception finds hardest."""
    opened = "".join(f"c{_ring_label(i)}c" for i in range(2, rings + 1))
    closed = "".join(f"c{_ring_label(i)}c" for i in range(rings, 1, -1))
    return f"c1ccc{opened}ccc{closed}c1"


def _fill(unit: str, limit: int = MAX_INPUT_CHARS, prefix: str = "") -> str:
    return prefix + unit * ((limit - len(prefix)) // len(unit))


def _kern(spines: int, records: int, measure: int) -> str:
    lines = ["\t".join(["**kern"] * spines)]
    for i in range(records):
        if i and i % measure == 0:
            lines.append("\t".join(["="] * spines))
        lines.append("\t".join(["16c"] * spines))
    lines.append("\t".join(["*-"] * spines))
    return "\n".join(lines) + "\n"


def _music(text: str) -> object:
    return parse_kern(text, timeout=KERN_SECONDS)


def _locations(text: str) -> object:
    return parse_locations(text, 896, 896)


WORST: dict[str, tuple[Parser, str]] = {
    "table: the most cells": (parse_table, "<td>x" * MAX_CELLS),
    "table: the most rows": (parse_table, "<tr>" * MAX_CELLS + "<td>x"),
    "table: 50,000 nested inline tags": (
        parse_table,
        "<td>" + "<b>" * 50_000 + "</i>" * 50_000,
    ),
    "table: the largest grid": (
        parse_table,
        "<tr>" + f'<td colspan="{MAX_SPAN}">x</td>' * (MAX_CELLS // MAX_SPAN) + "</tr>",
    ),
    "table: rows of rowspans to the end": (
        parse_table,
        f'<tr><td rowspan="{SQUARE}">x</td></tr>' * SQUARE,
    ),
    "table: 100,000 comment openers": (parse_table, _fill("<!--", prefix="<td>x</td>")),
    "table: 400,000 '<'": (parse_table, _fill("<", prefix="<td>x</td>")),
    "table: 44,000 loc tokens in a cell": (parse_table, _fill("<loc0001>", prefix="<td>")),
    "table: 30,000 span attributes": (
        parse_table,
        "<td " + 'colspan="2" ' * 30_000 + ">x</td>",
    ),
    "smiles: the longest chain": (parse_smiles, "C" * MAX_SMILES_CHARS),
    "smiles: the most fused rings": (parse_smiles, acene(MAX_RINGS)),
    "smiles: the largest aromatic ring": (parse_smiles, "c1" + "c" * (MAX_RING_ATOMS - 1) + "1"),
    "smiles: the longest E/Z polyene": (
        parse_smiles,
        "C" + "/C=C/C" * ((MAX_SMILES_CHARS - 1) // 6),
    ),
    "smiles: the longest chiral chain": (
        parse_smiles,
        "C" + "[C@@H](Cl)" * ((MAX_SMILES_CHARS - 2) // 10) + "C",
    ),
    # no limit on the data: these end at the deadline with a KernParseError
    "kern: one measure of 4,000 sixteenths": (_music, _kern(1, 4_000, 4_000)),
    "kern: 390,000 characters on 4 spines": (_music, _kern(4, MAX_INPUT_CHARS // 17, 16)),
    "text: 44,000 loc tokens": (parse_ocr, _fill("<loc0001>")),
    "text: 11,000 boxed lines": (parse_ocr, _fill("<loc0001><loc0002><loc0003><loc0004>a;")),
    "locations: 11,000 detections": (
        _locations,
        _fill("<loc0001><loc0002><loc0003><loc0004> x ;"),
    ),
    "locations: 400,000 characters of seg tokens": (_locations, _fill("<seg001>")),
}
