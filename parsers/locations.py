"""PaliGemma location tokens: ``<locYYYY>`` quadruples and ``<segNNN>`` mask codes.

A box is four tokens y_min, x_min, y_max, x_max, each one of 1024 bins across the square
model input. Detection output reads ``<loc..>*4 label ; <loc..>*4 label``; segmentation
output puts 16 ``<seg..>`` codes after the box.
"""

from __future__ import annotations

import re

from pydantic import Field

from parsers.base import Box, Frozen, check_size

__all__ = ["BINS", "Detection", "box_from_bins", "box_to_tokens", "parse_locations"]

BINS = 1024
# Linear-time pattern: fixed token counts, a bounded seg run, a label free of '<' and ';'.
_DETECTION = re.compile(
    r"<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})>((?:<seg\d{3}>){0,64})([^<;\n]*)"
)
_SEG = re.compile(r"<seg(\d{3})>")


class Detection(Frozen):
    """One located object: its label, its box in pixels and its mask codes (if any)."""

    label: str = Field(description="what the model named the object (may be empty)")
    box: Box = Field(description="box in pixels of the image the model saw")
    segmentation: tuple[int, ...] | None = Field(
        default=None, description="<seg> codewords (0-127) when the model wrote a mask"
    )


def box_from_bins(y0: int, x0: int, y1: int, x1: int, width: float, height: float) -> Box:
    """Pixels of a box given as four bins (y_min, x_min, y_max, x_max) of ``BINS``."""
    ys = sorted((min(y0, BINS - 1), min(y1, BINS - 1)))
    xs = sorted((min(x0, BINS - 1), min(x1, BINS - 1)))
    return Box(
        x0=xs[0] / BINS * width,
        y0=ys[0] / BINS * height,
        x1=(xs[1] + 1) / BINS * width,
        y1=(ys[1] + 1) / BINS * height,
    )


def box_to_tokens(box: Box, width: float, height: float) -> str:
    """The four ``<loc>`` tokens of a pixel box (the inverse of ``box_from_bins``)."""

    def bin_of(value: float, size: float, offset: int = 0) -> int:
        return max(0, min(BINS - 1, int(value / size * BINS) - offset))

    y0, x0 = bin_of(box.y0, height), bin_of(box.x0, width)
    # the far edge is the end of its bin (box_from_bins adds one bin), so a box to the
    # image's edge ends in the last bin
    y1 = max(y0, bin_of(box.y1, height, 1))
    x1 = max(x0, bin_of(box.x1, width, 1))
    return "".join(f"<loc{v:04d}>" for v in (y0, x0, y1, x1))


def parse_locations(text: str, width: float, height: float) -> list[Detection]:
    """Every box the text holds, in reading order of the text, mapped to pixels.

    ``width`` and ``height`` are the size of the image the model saw (after any padding to
    a square). Text without location tokens gives an empty list.
    """
    check_size(text)
    detections = []
    for match in _DETECTION.finditer(text):
        y0, x0, y1, x1 = (int(match.group(i)) for i in range(1, 5))
        codes = tuple(int(code) for code in _SEG.findall(match.group(5))) or None
        detections.append(
            Detection(
                label=match.group(6).strip(),
                box=box_from_bins(y0, x0, y1, x1, width, height),
                segmentation=codes,
            )
        )
    return detections
