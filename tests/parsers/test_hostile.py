"""Random, truncated and hostile strings: only ParseError, no hang, no unsafe HTML."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html

from parsers import (
    InputTooLargeError,
    ParseError,
    parse_kern,
    parse_locations,
    parse_smiles,
    parse_table,
    parse_text,
)

FRAGMENTS = [
    "<table>",
    "</table>",
    "<tr>",
    "</tr>",
    "<td>",
    "</td>",
    "<th>",
    "<thead>",
    "</thead>",
    '<td colspan="3">',
    '<td rowspan="999999999">',
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<a href='javascript:x'>",
    "&amp;",
    "&lt;script&gt;",
    "&#x3C;",
    '<!DOCTYPE x [<!ENTITY a "aaaa">]>',
    "&a;",
    "<td style='x'>",
    "<<<<",
    ">>>>",
    "<loc0012>",
    "<seg001>",
    'coords="<loc0001><loc0002><loc0003><loc0004>"',
    "<!--",
    "-->",
    "<td",
    ' colspan="2"',
    ">",
    "x",
    "é",
    "\n",
    "\t",
    "**kern",
    "*^",
    "*v",
    "*-",
    "4c",
    "=1",
    "[O-1000]",
    "C1CC",
    "c1ccccc1",
    "(",
    ")",
    "@",
    "·",
    "<b>",
    "<t>",
]
hostile = st.lists(st.sampled_from(FRAGMENTS), max_size=80).map("".join)
anything = st.one_of(st.text(max_size=400), hostile)
ALLOWED_TAGS = {"table", "thead", "tbody", "tr", "td", "th"}
INLINE = {"b", "i", "sup", "sub", "br"}
ALLOWED_ATTRS = {"rowspan", "colspan"}
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(anything)
def test_table_html_is_whitelisted(text: str) -> None:
    try:
        table = parse_table(text)
    except ParseError:
        return
    tree = lxml_html.fragment_fromstring(table.html)
    for element in tree.iter():
        if element.tag in INLINE:  # inline tags only inside a cell, never with attributes
            assert next(element.iterancestors("td", "th"), None) is not None
            assert not element.attrib
            continue
        assert element.tag in ALLOWED_TAGS
        assert set(element.attrib) <= ALLOWED_ATTRS
    assert "<script" not in table.html.lower()
    assert "<!--" not in table.html
    assert parse_table(table.html).cells == tuple(
        c.model_copy(update={"box": None}) for c in table.cells
    )


@FAST
@given(anything)
def test_locations_and_text_never_raise(text: str) -> None:
    for detection in parse_locations(text, 100, 100):
        assert 0 <= detection.box.x0 <= detection.box.x1 <= 100
        assert 0 <= detection.box.y0 <= detection.box.y1 <= 100
    lines = parse_text(text)
    for line in lines.lines:  # no location token survives in the text, no line is empty
        assert line.text and "<loc" not in line.text and "<seg" not in line.text


@settings(max_examples=60, deadline=None)
@given(anything)
def test_smiles_never_raises(text: str) -> None:
    from rdkit import Chem, RDLogger

    molecule = parse_smiles(text)
    RDLogger.DisableLog("rdApp.*")
    try:
        expected = Chem.MolFromSmiles(text.strip()) if text.strip() else None
    finally:
        RDLogger.EnableLog("rdApp.*")
    if molecule.valid:  # what is accepted is exactly RDKit's reading
        assert expected is not None
        assert molecule.smiles == Chem.MolToSmiles(expected) and molecule.error is None
    else:
        assert molecule.error and molecule.smiles is None and molecule.inchikey is None


@settings(max_examples=40, deadline=None)
@given(anything)
def test_kern_raises_only_parse_errors(text: str) -> None:
    pytest.importorskip("music21")
    try:
        score = parse_kern(text)
    except ParseError as error:
        assert error.reason and error.raw == text[:10_000]
        return
    # the count is music21's own for the normalised kern
    assert score.note_count == len(score.to_music21().flatten().notes) > 0


@pytest.mark.parametrize("parse", [parse_table, parse_text, parse_smiles, parse_kern])
def test_oversized_input_is_refused(parse: object) -> None:
    with pytest.raises(InputTooLargeError):
        parse("<td>" * 200_000)  # type: ignore[operator]


def test_deep_nesting_and_long_runs_are_fast() -> None:
    deep = "<table>" * 20_000 + "<tr><td>x" + "</td></tr>" * 20_000
    assert parse_table(deep).cells[0].text == "x"
    assert len(parse_locations("<loc0001>" * 40_000, 10, 10)) == 10_000
    assert parse_locations("<loc0001><seg001>" * 20_000, 10, 10) == []
    assert re.search("x", parse_text("<loc0001><" * 30_000 + "x").text)
