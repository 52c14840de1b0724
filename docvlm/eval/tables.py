"""Table metrics: TEDS and S-TEDS as PubTabNet computes them, and GriTS-Top/-Con.

TEDS (Zhong et al. 2020) is 1 - TED(pred, true) / max(nodes): a tree edit distance
(APTED) over the HTML trees where renaming one ``td`` into another costs the normalised
Levenshtein distance of their content tokens (characters and inline tags). This module
follows PubTabNet's official ``src/metric.py`` rule for rule so that scores agree to
1e-6; it is faster because content distances use rapidfuzz and are computed once per cell
pair, and identical inputs short-cut to 1.0.

GriTS (Smock et al. 2023) compares the two cell grids with a factored 2D most-similar-
substructures alignment; -Top rewards matching spans, -Con matching text.

Both cost time that grows with the product of the two tables' sizes, so a prediction with
more than twice the truth's cells plus 64 is scored 0 without comparison (``oversized``
says why); its TEDS would be below 0.5 anyway, as each extra node costs a deletion.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from difflib import SequenceMatcher
from typing import Any

from apted import APTED, Config
from lxml import etree, html
from rapidfuzz.distance import Levenshtein

from parsers import Table, parse_table

__all__ = [
    "EXTRA_CELLS",
    "GritsScore",
    "grits",
    "grits_con",
    "grits_top",
    "oversized",
    "s_teds",
    "teds",
]

#: A prediction may have up to twice the truth's cells plus this many; a larger one is
#: scored 0 without comparison (a hostile 20,000-cell output would take minutes).
EXTRA_CELLS = 64
_CELL = re.compile(r"<t[dh][\s>/]", re.IGNORECASE)


def oversized(pred_cells: int, true_cells: int) -> str | None:
    """Why a prediction is too large to compare with the truth, or None when it is not."""
    limit = 2 * true_cells + EXTRA_CELLS
    if pred_cells > limit:
        return (
            f"prediction has {pred_cells:,} cells, more than {limit:,} (twice the truth's "
            f"{true_cells:,} plus {EXTRA_CELLS}): scored 0"
        )
    return None


def html_oversized(pred_html: str, true_html: str) -> str | None:
    """``oversized`` for two HTML strings, cells counted by their opening tags."""
    return oversized(len(_CELL.findall(pred_html)), len(_CELL.findall(true_html)))


class _Node:
    __slots__ = ("children", "colspan", "content", "rowspan", "tag")

    def __init__(
        self, tag: str, colspan: int | None, rowspan: int | None, content: tuple[str, ...] | None
    ) -> None:
        self.tag = tag
        self.colspan = colspan
        self.rowspan = rowspan
        self.content = content
        self.children: list[_Node] = []


class _Costs(Config):  # type: ignore[misc]
    """PubTabNet's rename cost, with each cell pair's content distance computed once."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], float] = {}

    def rename(self, node1: _Node, node2: _Node) -> float:
        if (
            node1.tag != node2.tag
            or node1.colspan != node2.colspan
            or node1.rowspan != node2.rowspan
        ):
            return 1.0
        if node1.tag == "td" and (node1.content or node2.content):
            key = (id(node1), id(node2))
            cost = self._cache.get(key)
            if cost is None:
                a, b = node1.content or (), node2.content or ()
                cost = float(Levenshtein.distance(a, b)) / max(len(a), len(b))
                self._cache[key] = cost
            return cost
        return 0.0

    def children(self, node: _Node) -> list[_Node]:
        return node.children


def _tokens(node: Any, out: list[str]) -> None:
    out.append(f"<{node.tag}>")
    if node.text is not None:
        out.extend(node.text)
    for child in node.getchildren():
        _tokens(child, out)
    if node.tag != "unk":
        out.append(f"</{node.tag}>")
    if node.tag != "td" and node.tail is not None:
        out.extend(node.tail)


def _tree(node: Any, structure_only: bool) -> _Node:
    if node.tag == "td":
        content: tuple[str, ...] = ()
        if not structure_only:
            tokens: list[str] = []
            _tokens(node, tokens)
            content = tuple(tokens[1:-1])
        return _Node(
            "td",
            int(node.attrib.get("colspan", "1")),
            int(node.attrib.get("rowspan", "1")),
            content,
        )
    built = _Node(node.tag, None, None, None)
    built.children = [_tree(child, structure_only) for child in node.getchildren()]
    return built


_PARSER = html.HTMLParser(remove_comments=True, encoding="utf-8", no_network=True)


def _table(markup: str) -> Any:
    document = html.fromstring(markup, parser=_PARSER)
    found = document.xpath("body/table")
    return found[0] if found else None


def teds(
    pred_html: str,
    true_html: str,
    structure_only: bool = False,
    ignore_nodes: Sequence[str] = (),
) -> float:
    """TEDS of a predicted table against the truth, in [0, 1].

    Both inputs are full documents as PubTabNet writes them (``<html><body><table>``);
    either missing a ``body/table`` scores 0, like the official code. ``structure_only``
    gives S-TEDS. ``ignore_nodes`` strips those tags first (the official option). An
    ``oversized`` prediction scores 0.
    """
    if not pred_html or not true_html or html_oversized(pred_html, true_html):
        return 0.0
    if pred_html == true_html and not ignore_nodes:
        return 1.0 if _table(pred_html) is not None else 0.0
    pred, true = _table(pred_html), _table(true_html)
    if pred is None or true is None:
        return 0.0
    if ignore_nodes:
        etree.strip_tags(pred, *ignore_nodes)
        etree.strip_tags(true, *ignore_nodes)
    n_nodes = max(len(pred.xpath(".//*")), len(true.xpath(".//*")))
    if n_nodes == 0:
        return 1.0
    distance = APTED(_tree(pred, structure_only), _tree(true, structure_only), _Costs())
    # The official formula falls below 0 when the trees cannot be mapped onto each other
    # (model noise such as a run of <loc> tokens parses into a chain of nested elements):
    # no table at all scores 0, and so does anything worse.
    return max(0.0, 1.0 - float(distance.compute_edit_distance()) / n_nodes)


def s_teds(pred_html: str, true_html: str) -> float:
    """S-TEDS: TEDS on structure only (cell content ignored)."""
    return teds(pred_html, true_html, structure_only=True)


# --- GriTS ---------------------------------------------------------------------------

Grid = list[list[Any]]


class GritsScore(tuple[float, float, float]):
    """(f-score, precision, recall) of a GriTS comparison."""

    @property
    def fscore(self) -> float:
        return self[0]

    @property
    def precision(self) -> float:
        return self[1]

    @property
    def recall(self) -> float:
        return self[2]


def _fscore(match: float, n_true: int, n_pred: int) -> GritsScore:
    precision = match / n_pred if n_pred > 0 else 1.0
    recall = match / n_true if n_true > 0 else 1.0
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return GritsScore((f, precision, recall))


def _align(
    n1: int, n2: int, reward: Callable[[int, int], float]
) -> tuple[list[int], list[int], float]:
    """Best monotone alignment of two index sequences (skips free), with its traceback."""
    scores = [[0.0] * (n2 + 1) for _ in range(n1 + 1)]
    moves = [[0] * (n2 + 1) for _ in range(n1 + 1)]
    for i in range(1, n1 + 1):
        moves[i][0] = -1
    for j in range(1, n2 + 1):
        moves[0][j] = 1
    for i in range(1, n1 + 1):
        for j in range(1, n2 + 1):
            diagonal = scores[i - 1][j - 1] + reward(i - 1, j - 1)
            skip2, skip1 = scores[i][j - 1], scores[i - 1][j]
            best = max(diagonal, skip1, skip2)
            scores[i][j] = best
            moves[i][j] = 0 if diagonal == best else (-1 if skip1 == best else 1)
    a: list[int] = []
    b: list[int] = []
    i, j = n1, n2
    while i or j:
        if moves[i][j] == -1:
            i -= 1
        elif moves[i][j] == 1:
            j -= 1
        else:
            i, j = i - 1, j - 1
            a.append(i)
            b.append(j)
    return a[::-1], b[::-1], scores[n1][n2]


def _grits(true: Grid, pred: Grid, similarity: Callable[[Any, Any], float]) -> GritsScore:
    tr, tc = len(true), len(true[0]) if true else 0
    pr, pc = len(pred), len(pred[0]) if pred else 0
    if tr * tc == 0 or pr * pc == 0 or oversized(pr * pc, tr * tc):
        return _fscore(0.0, tr * tc, pr * pc)
    reward = {
        (a, b, c, d): similarity(true[a][b], pred[c][d])
        for a, b, c, d in itertools.product(range(tr), range(tc), range(pr), range(pc))
    }

    def rows(ti: int, pi: int) -> float:
        return _align(tc, pc, lambda x, y: reward[ti, x, pi, y])[2]

    def cols(ti: int, pi: int) -> float:
        return _align(tr, pr, lambda x, y: reward[x, ti, y, pi])[2]

    true_rows, pred_rows, _ = _align(tr, pr, rows)
    true_cols, pred_cols, _ = _align(tc, pc, cols)
    match = sum(
        reward[a, b, c, d]
        for a, c in zip(true_rows, pred_rows, strict=True)
        for b, d in zip(true_cols, pred_cols, strict=True)
    )
    return _fscore(match, tr * tc, pr * pc)


def _as_table(value: str | Table) -> Table:
    return value if isinstance(value, Table) else parse_table(value)


def _span_grid(table: Table) -> Grid:
    rows, cols = table.shape
    grid: Grid = [[(0, 0, 0, 0)] * cols for _ in range(rows)]
    for cell in table.cells:
        for r in range(cell.row, cell.row + cell.rowspan):
            for c in range(cell.col, cell.col + cell.colspan):
                grid[r][c] = (
                    cell.col - c,
                    cell.row - r,
                    cell.col + cell.colspan - c,
                    cell.row + cell.rowspan - r,
                )
    return grid


def _text_grid(table: Table) -> Grid:
    rows, cols = table.shape
    grid: Grid = [[""] * cols for _ in range(rows)]
    for cell in table.cells:
        for r in range(cell.row, cell.row + cell.rowspan):
            for c in range(cell.col, cell.col + cell.colspan):
                grid[r][c] = cell.text
    return grid


def _box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    # GriTS' reference divides by the rectangle enclosing both, not by the union area.
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0, iw) * max(0, ih)
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / hull if hull > 0 else 0.0


def _lcs_similarity(a: str, b: str) -> float:
    if not a and not b:
        return 1.0
    blocks = SequenceMatcher(None, a, b).get_matching_blocks()
    return 2 * sum(block.size for block in blocks) / (len(a) + len(b))


def grits_top(pred: str | Table, true: str | Table) -> float:
    """GriTS-Top: how well the predicted cell spans match the truth's, in [0, 1]."""
    return _grits(_span_grid(_as_table(true)), _span_grid(_as_table(pred)), _box_iou).fscore


def grits_con(pred: str | Table, true: str | Table) -> float:
    """GriTS-Con: how well the predicted cell text matches the truth's (LCS), in [0, 1]."""
    return _grits(_text_grid(_as_table(true)), _text_grid(_as_table(pred)), _lcs_similarity).fscore


def grits(pred: str | Table, true: str | Table) -> dict[str, GritsScore]:
    """Both GriTS variants with precision and recall."""
    t, p = _as_table(true), _as_table(pred)
    return {
        "top": _grits(_span_grid(t), _span_grid(p), _box_iou),
        "con": _grits(_text_grid(t), _text_grid(p), _lcs_similarity),
    }
