"""Real scans from the corpus read through the real conversion path by a ScriptedEngine.

The engine answers the ``ocr`` prompt with lines led by ``<loc>`` boxes in the square
frame the page is read in (its side is the page's longer side: the engine's resolution is
set to it so the page is one tile), as a fine-tuned model would; the records' boxes are
what ``parse_text`` and the assembly make of them.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from docvlm import Document, DocVLM, Settings
from docvlm.engines import Request
from docvlm.tasks import TaskName
from docvlm.testing import ScriptedEngine
from parsers import Box, TextLine, box_to_tokens

#: The share of the page a word may sit away from its record's box.
TOLERANCE = 0.03

TABLE = (
    "<thead><tr><th rowspan=2>Drug</th><th colspan=2>Dose</th></tr>"
    "<tr><th>mg</th><th>n</th></tr></thead>"
    "<tbody><tr><td>A</td><td>10</td><td>4</td></tr></tbody>"
)


def scan_lines(texts: Sequence[str], width: float, height: float) -> list[tuple[Box, str]]:
    """``texts`` as lines down the page: one every 1/(n+2) of the height, indented a little
    more each time, ending at various widths (so a scale error shows), as tall as printed
    text of that width is (about 2.2 x the width of a character)."""
    step = height / (len(texts) + 2)
    lines = []
    for i, text in enumerate(texts):
        x0, x1 = width * (0.08 + 0.01 * i), width * (0.55 + 0.04 * (i % 8))
        tall = min(step * 0.6, 2.2 * (x1 - x0) / max(len(text), 1))
        lines.append((Box(x0=x0, y0=step * (i + 1), x1=x1, y1=step * (i + 1) + tall), text))
    return lines


def ocr_output(lines: Sequence[tuple[Box, str]], side: float) -> str:
    return " ; ".join(box_to_tokens(box, side, side) + " " + text for box, text in lines)


def convert_scripted(
    source: Path | str,
    side: int,
    respond: dict[str, str],
    tasks: Sequence[TaskName] = ("text",),
    pages: str | None = None,
    dpi: int = 72,
) -> Document:
    """``source`` converted by a ScriptedEngine of resolution ``side`` (one tile a page)."""

    def answer(request: Request) -> str:
        return respond[request.prompt]

    engine = ScriptedEngine(answer, resolution=side)
    client = DocVLM(Settings(dpi=dpi), engine_factory=lambda c, s: engine, checkpoint="s")
    return client.convert(source, tasks=tasks, pages=pages)


@dataclass(frozen=True)
class Word:
    text: str
    box: Box  # PDF points, top-left origin, as pdftotext -bbox gives them


@dataclass(frozen=True)
class PdfPage:
    width: float
    height: float
    words: list[Word]


_PAGE = re.compile(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', re.S)
_WORD = re.compile(
    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>'
)


def pdftotext_words(pdf: Path) -> list[PdfPage]:
    """Each page's size and words with boxes, from poppler's ``pdftotext -bbox``."""
    run = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True
    )
    pages = []
    for width, height, body in _PAGE.findall(run.stdout):
        words = [
            Word(text, Box(x0=float(a), y0=float(b), x1=float(c), y1=float(d)))
            for a, b, c, d, text in _WORD.findall(body)
        ]
        pages.append(PdfPage(float(width), float(height), words))
    return pages


def assert_words_on_lines(page: PdfPage, lines: Sequence[TextLine], px: tuple[int, int]) -> None:
    """Every line's words are found, left to right, each within TOLERANCE of the page of
    the line's record box (page pixels ``px`` scaled to the PDF page), spanning it, and
    no other words.

    Words are given to the line whose scaled box holds their vertical centre (pdftotext
    has its own reading order, so the order of its output is not compared)."""
    sx, sy = page.width / px[0], page.height / px[1]
    dx, dy = TOLERANCE * page.width, TOLERANCE * page.height
    found = 0
    for line in lines:
        assert line.box is not None
        top, bottom = line.box.y0 * sy, line.box.y1 * sy
        mine = sorted(
            (w for w in page.words if top <= (w.box.y0 + w.box.y1) / 2 <= bottom),
            key=lambda w: w.box.x0,
        )
        assert [w.text for w in mine] == line.text.split(), (line, mine)
        found += len(mine)
        # the text spans the line's box: its first word starts, its last ends, at the edges
        assert abs(mine[0].box.x0 - line.box.x0 * sx) <= dx, (line, mine[0])
        assert abs(mine[-1].box.x1 - line.box.x1 * sx) <= dx, (line, mine[-1])
        for word in mine:
            box = word.box
            where = f"{word.text!r}: {box} vs line {line.box} x ({sx:.3f}, {sy:.3f})"
            assert line.box.x0 * sx - dx <= box.x0 and box.x1 <= line.box.x1 * sx + dx, where
            assert abs(box.y0 - top) <= dy and abs(box.y1 - bottom) <= dy, where
    assert found == len(page.words), "pdftotext found words no record has"
