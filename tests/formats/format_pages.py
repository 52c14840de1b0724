"""Pages for the format tests, read through the real parse path by a ScriptedEngine.

The engine writes what a fine-tuned model would: lines led by ``<loc>`` boxes (y_min,
x_min, y_max, x_max in 1024 bins of the square input), so the boxes in the records are the
ones ``parse_text`` and the assembly make, not ones the test wrote into a model directly.
"""

from __future__ import annotations

from collections.abc import Sequence

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
