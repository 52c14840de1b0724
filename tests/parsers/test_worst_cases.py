"""Every parser on the slowest input its size limits allow: it finishes with the right value.

Times are not asserted (``python benchmarks/parsers.py --worst`` prints them); a parser that
lost its bound would make this test hang or fail on the value.
"""

from __future__ import annotations

import time

import pytest
from worst_cases import KERN_SECONDS, SQUARE, WORST

from parsers import (
    MAX_INPUT_CHARS,
    InputTooLargeError,
    KernParseError,
    Molecule,
    Table,
    TextLines,
    parse_table,
    parse_text,
)
from parsers.table import MAX_CELLS

TABLES = {  # name -> (cells, shape)
    "table: the most cells": (MAX_CELLS, (1, MAX_CELLS)),
    "table: the most rows": (1, (MAX_CELLS, 1)),
    "table: 50,000 nested inline tags": (1, (1, 1)),
    "table: the largest grid": (MAX_CELLS // 1000, (1, MAX_CELLS)),
    "table: rows of rowspans to the end": (SQUARE, (SQUARE, SQUARE)),
    "table: 100,000 comment openers": (1, (1, 1)),
    "table: 400,000 '<'": (1, (1, 1)),
    "table: 44,000 loc tokens in a cell": (1, (1, 1)),
    "table: 30,000 span attributes": (1, (1, 2)),
}


@pytest.mark.parametrize("name", list(WORST))
def test_worst_case(name: str) -> None:
    parse, text = WORST[name]
    if name.startswith("smiles"):
        Chem = pytest.importorskip("rdkit.Chem")
        molecule = parse(text)
        assert isinstance(molecule, Molecule) and molecule.valid, molecule
        assert molecule.smiles == Chem.MolToSmiles(Chem.MolFromSmiles(text))
    elif name.startswith("kern"):
        pytest.importorskip("music21")
        parse("**kern\n4c\n*-\n")  # music21 imported before the clock starts
        cpu = time.thread_time()
        with pytest.raises(KernParseError) as info:
            parse(text)
        assert time.thread_time() - cpu < KERN_SECONDS + 1.5
        assert info.value.reason == (
            f"music21 did not finish within {KERN_SECONDS:g} s of CPU, the parser's deadline"
        )
    elif name.startswith("table"):
        table = parse(text)
        assert isinstance(table, Table)
        assert (len(table.cells), table.shape) == TABLES[name]
        assert len(table.repairs) <= 3  # summarised, however many cells were repaired
    elif name.startswith("text"):
        lines = parse(text)
        assert isinstance(lines, TextLines)
        assert all("<loc" not in line.text for line in lines.lines)
    else:
        detections = parse(text)
        assert isinstance(detections, list)
        assert len(detections) == (text.count(" x ;") if "x ;" in text else 0)


def test_the_input_limit_is_exact() -> None:
    assert parse_text("a" * MAX_INPUT_CHARS).text == "a" * MAX_INPUT_CHARS
    with pytest.raises(InputTooLargeError) as info:
        parse_table("a" * (MAX_INPUT_CHARS + 1))
    assert info.value.reason == (
        f"output is {MAX_INPUT_CHARS + 1:,} characters, more than the limit of {MAX_INPUT_CHARS:,}"
    )
    assert len(info.value.raw) == 10_000
