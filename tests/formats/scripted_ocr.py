"""An engine factory for the OCRmyPDF plugin test (``--docvlm-engine scripted_ocr:factory``).

It answers every OCR request with the lines of ``LINES`` and a last line naming the
checkpoint it was built for (so a test sees which one the plugin chose), boxes given as
shares of the square frame the page image is read in (independent of OCRmyPDF's DPI).
Its token is a piece between spaces: a request's ``max_new_tokens`` cuts the answer after
the last whole line that fits, with ``stop="length"``, as a model cut at its budget.
"""

from __future__ import annotations

from docvlm.engines import Generation, Request
from docvlm.settings import Settings
from docvlm.testing import ScriptedEngine
from parsers import Box, box_to_tokens

#: (box as shares of the square frame: x0, y0, x1, y1), text
LINES = [
    ((0.10, 0.10, 0.60, 0.13), "Congress of the United States"),
    ((0.12, 0.25, 0.64, 0.28), "scripted by docvlm"),
]


def lines(checkpoint: str) -> list[tuple[tuple[float, float, float, float], str]]:
    """What the engine built for ``checkpoint`` writes on every page."""
    return [*LINES, ((0.10, 0.40, 0.50, 0.43), f"checkpoint {checkpoint}")]


def factory(checkpoint: str, settings: Settings) -> ScriptedEngine:
    def answer(request: Request) -> Generation:
        written: list[str] = []
        for (a, b, c, d), text in lines(checkpoint):
            box = Box(x0=a * 1024, y0=b * 1024, x1=c * 1024, y1=d * 1024)
            line = box_to_tokens(box, 1024, 1024) + " " + text
            if len(" ; ".join([*written, line]).split(" ")) > request.max_new_tokens:
                return Generation(text=" ; ".join(written), stop="length")
            written.append(line)
        return Generation(text=" ; ".join(written))

    # large enough that any page OCRmyPDF rasterises is read as one tile
    return ScriptedEngine(answer, resolution=20000, checkpoint=f"scripted:{checkpoint}")
