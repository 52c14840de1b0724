"""Page pictures: each page image with what was read drawn on it, for people who check
results without a browser (``docvlm view OUT --export DIR``).

Blocks come in the shared reading order (``docvlm.formats.order``): each block's box in its
task's colour with its reading-order number, each line's box thinner inside it (dashed
where the model gave no box and it was estimated). Boxes are in page pixels; a picture
rendered at another size is drawn to scale.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

from docvlm.formats.order import reading_order
from docvlm.results import Page
from parsers import Box

__all__ = ["COLOURS", "draw_page"]

#: One colour per task, as the viewer shows them.
COLOURS: dict[str, tuple[int, int, int]] = {
    "text": (31, 119, 180),
    "table": (214, 39, 40),
    "molecule": (44, 160, 44),
    "music": (148, 103, 189),
    "caption": (255, 127, 14),
    "ask": (140, 86, 75),
    "layout": (127, 127, 127),
}


def draw_page(image: Image.Image, page: Page) -> Image.Image:
    """A copy of ``image`` (the page as rendered) with ``page``'s blocks and lines drawn."""
    picture = image.convert("RGB")
    scale_x = picture.width / page.width if page.width else 1.0
    scale_y = picture.height / page.height if page.height else 1.0
    pen = ImageDraw.Draw(picture)
    width = max(1, round(min(picture.size) / 400))

    def place(box: Box) -> tuple[float, float, float, float]:
        return (box.x0 * scale_x, box.y0 * scale_y, box.x1 * scale_x, box.y1 * scale_y)

    for number, block in enumerate(reading_order(page), start=1):
        colour = COLOURS.get(block.kind, COLOURS["layout"])
        for line in block.lines:
            if line.estimated:
                _dashed(pen, place(line.box), colour, width)
            else:
                pen.rectangle(place(line.box), outline=colour, width=width)
        x0, y0, x1, y1 = place(block.box)
        pen.rectangle((x0, y0, x1, y1), outline=colour, width=2 * width)
        label = f"{number} {block.label or block.kind}"
        left, top, right, bottom = pen.textbbox((x0, y0), label)
        pen.rectangle((left, top, right + 2, bottom + 2), fill=colour)
        pen.text((x0 + 1, y0 + 1), label, fill=(255, 255, 255))
    return picture


def _dashed(
    pen: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    colour: tuple[int, int, int],
    width: int,
) -> None:
    """A dashed rectangle: an estimated box must not look like one the model gave."""
    x0, y0, x1, y1 = box
    dash = 6 * width
    for start, end, fixed, horizontal in (
        (x0, x1, y0, True),
        (x0, x1, y1, True),
        (y0, y1, x0, False),
        (y0, y1, x1, False),
    ):
        position = start
        while position < end:
            stop = min(position + dash, end)
            if horizontal:
                pen.line((position, fixed, stop, fixed), fill=colour, width=width)
            else:
                pen.line((fixed, position, fixed, stop), fill=colour, width=width)
            position += 2 * dash
