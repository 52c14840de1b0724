"""Pages for the format tests, read through the real parse path by a ScriptedEngine.

The engine writes what a fine-tuned model would: lines led by ``<loc>`` boxes (y_min,
x_min, y_max, x_max in 1024 bins of the square input), so the boxes in the records are the
ones ``parse_text`` and the assembly make, not ones the test wrote into a model directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw

from docvlm import Document, DocVLM, Settings
from docvlm.engines import Request
from docvlm.tasks import TaskName
from docvlm.testing import ScriptedEngine
from parsers import Box, box_to_tokens

SIDE = 896  # one model-sized tile: the page is read whole

HEADER = (Box(x0=60, y0=40, x1=836, y1=70), "Annual report of the survey")
LEFT = [(Box(x0=60, y0=120 + 40 * i, x1=420, y1=146 + 40 * i), f"left {i}") for i in range(8)]
RIGHT = [(Box(x0=476, y0=124 + 40 * i, x1=836, y1=150 + 40 * i), f"right {i}") for i in range(8)]
FOOTER = (Box(x0=60, y0=800, x1=836, y1=830), "A full-width footnote & <note>")

#: Lines in reading order: header, the left column, the right one, the footer.
TWO_COLUMNS = [HEADER, *LEFT, *RIGHT, FOOTER]


def _draw(lines: list[tuple[Box, str]]) -> Image.Image:
    image = Image.new("RGB", (SIDE, SIDE), "white")
    draw = ImageDraw.Draw(image)
    for box, text in lines:
        draw.text((box.x0, box.y0 + 4), text, fill="black")
    return image


def model_output(lines: list[tuple[Box, str]], side: float = SIDE) -> str:
    """OCR output with a box before each line."""
    return " ; ".join(box_to_tokens(box, side, side) + " " + text for box, text in lines)


def convert_scripted(
    image: Image.Image, respond: dict[str, str], tasks: Sequence[TaskName], layout: bool = False
) -> Document:
    """``image`` converted by a ScriptedEngine answering each prompt from ``respond``."""

    def answer(request: Request) -> str:
        return respond[request.prompt]

    engine = ScriptedEngine(answer, resolution=SIDE)
    client = DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="scripted")
    return client.convert(image, tasks=tasks, layout=layout)


def two_column_document() -> Document:
    """A two-column page whose model wrote the lines row by row across both columns (as
    a model without a reading order does): header, left 0, right 0, left 1, ..., footer."""
    rows = [line for pair in zip(LEFT, RIGHT, strict=True) for line in pair]
    scrambled = [HEADER, *rows, FOOTER]
    return convert_scripted(_draw(TWO_COLUMNS), {"ocr": model_output(scrambled)}, ["text"])


SCAN = "tables/fintabnet_like/ADS.2007.page_123.png"
#: The second table of the scan (Net charge-offs, page pixels from table_bboxes.json).
SCAN_TABLE = Box(x0=177, y0=1163, x1=1062, y1=1329)
SCAN_CELLS = [
    ["", "2007", "2006", "2005"],
    ["Average managed receivables", "$3,909,627", "$3,640,057", "$3,170,485"],
    ["Net charge-offs", "227,393", "180,449", "207,397"],
]


def scan_lines(page_json: dict[str, Any]) -> list[tuple[Box, str]]:
    """The scan's text lines as its own OCR found them (text and box, page pixels)."""
    return [
        (Box(x0=x0, y0=y0, x1=x1, y1=y1), line["text"])
        for line in page_json["pages"][0]["text_lines"]
        for x0, y0, x1, y1 in [line["bbox"]]
    ]


def scan_table_output(side: float) -> str:
    """The table as a table model writes it: HTML with a ``coords`` box per cell."""
    rows, cols = len(SCAN_CELLS), len(SCAN_CELLS[0])
    dx, dy = SCAN_TABLE.width / cols, SCAN_TABLE.height / rows
    out = []
    for r, row in enumerate(SCAN_CELLS):
        tag = "th" if r == 0 else "td"
        cells = []
        for c, text in enumerate(row):
            box = Box(
                x0=SCAN_TABLE.x0 + c * dx,
                y0=SCAN_TABLE.y0 + r * dy,
                x1=SCAN_TABLE.x0 + (c + 1) * dx,
                y1=SCAN_TABLE.y0 + (r + 1) * dy,
            )
            cells.append(f'<{tag} coords="{box_to_tokens(box, side, side)}">{text}</{tag}>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "<table>" + "".join(out) + "</table>"


def convert_scan(image: Image.Image, lines: list[tuple[Box, str]]) -> Document:
    """The scan read whole (one square tile of its long side) by a scripted text model
    and a scripted table model."""
    side = max(image.size)
    respond = {"ocr": model_output(lines, side), "table html": scan_table_output(side)}

    def answer(request: Request) -> str:
        assert request.image.size == (side, side)  # one tile: the boxes are page boxes
        return respond[request.prompt]

    engine = ScriptedEngine(answer, resolution=side)
    client = DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="scripted")
    return client.convert(image, tasks=["text", "table"])
