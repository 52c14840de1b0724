"""A page's orientation (a quarter turn) and skew, measured from its image before it is read.

The measure is classical document analysis, on the CPU, with numpy only:

- **ink points**: the page in grey, at most ``WORK_SIDE`` px on its long side, thresholded
  halfway between the paper (the median) and the darkest ink; each inked pixel is a point.
- **skew** (Postl 1986; Baird 1987): the points are projected onto a line at angle ``a``;
  text lines make the profile a comb of sharp peaks only where ``a`` is their slope, so
  the angle that maximises the profile's energy of first differences is the skew. A
  coarse search over +-``MAX_SKEW`` degrees is refined to hundredths around the best.
- **axis** (horizontal or vertical lines): the same energy, at the best angle, for the
  points as they lie and turned a quarter: text has gaps between its lines, not across
  them, so its lines' axis wins by a wide margin; a photo or a drawing wins by none.
- **up or down** (Bloomberg, Kopec and Dasari 1995, the cue Leptonica's orientation
  detection counts): in Latin, Cyrillic and Greek lowercase, ascenders (b d f h k l t and
  the capitals) are far more common than descenders (g j p q y). Each text line's profile
  has a dense x-height band; its ink above the band outweighs its ink below when the
  page is upright. Lines are found in vertical strips, so columns and a residual skew
  do not blur them.

The measure refuses to guess: with too few text lines, lines of capitals or digits (no
ascenders, no descenders), a photo, a blank page, or scripts whose lines have no such
band (CJK, whose lines are squares; Arabic and Hebrew, where the cue is weak or inverted),
its confidence is low and the page is left as it lies (``Orientation.rotation`` 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from PIL import Image

if TYPE_CHECKING:
    import numpy
    import numpy.typing as npt

__all__ = ["MAX_SKEW", "MIN_CONFIDENCE", "Orientation", "measure_orientation"]

Rotation = Literal[0, 90, 180, 270]
#: The largest skew searched, in degrees either way.
MAX_SKEW = 15.0
#: Below this confidence a turn is not applied (the page is read as it lies).
MIN_CONFIDENCE = 0.5
#: Long side of the working image, in pixels (a 150 dpi A4 page is about 1750).
WORK_SIDE = 1800
#: Points used to search the angle (a random, fixed-seed sample of the ink).
SAMPLE = 60_000
#: Levels (of 255) between paper and ink below which a page is blank.
MIN_CONTRAST = 48
#: Text lines needed to decide up or down.
MIN_LINES = 6
#: Text lines lower than this (working pixels) are too small to tell up from down.
MIN_HEIGHT = 7
#: Points used for the coarse search of both axes.
COARSE_SAMPLE = 20_000
#: Width of the strips lines are found in, in working pixels.
STRIP = 160


@dataclass(frozen=True)
class Orientation:
    """What the measure found: the clockwise quarter turn that makes the page upright, the
    slope of its text lines (degrees, positive rising to the right, in the upright page),
    and how sure it is of each (0-1)."""

    rotation: Rotation = 0
    skew: float = 0.0
    confidence: float = 0.0
    skew_confidence: float = 0.0
    note: str = ""


def _ink_points(image: Image.Image) -> tuple[npt.NDArray[numpy.float64], float, int, int] | None:
    """The ink pixels' centres (x, y) of the working image, its scale to the page, and its
    size; None when the page is blank (no contrast)."""
    import numpy as np

    scale = min(1.0, WORK_SIDE / max(image.width, image.height, 1))
    gray = image.convert("L")
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        gray = gray.resize(size, Image.Resampling.BOX)
    pixels = np.asarray(gray, dtype=np.int16)
    paper = float(np.median(pixels[::4, ::4]))
    if paper >= 128:
        ink_level = float(np.percentile(pixels[::2, ::2], 0.5))
        contrast = paper - ink_level
        mask = pixels < (paper + ink_level) / 2
    else:  # light writing on a dark ground
        ink_level = float(np.percentile(pixels[::2, ::2], 99.5))
        contrast = ink_level - paper
        mask = pixels > (paper + ink_level) / 2
    if contrast < MIN_CONTRAST:
        return None
    ys, xs = np.nonzero(mask)
    if xs.size < 200:
        return None
    points = np.stack([xs, ys], axis=1).astype(np.float64) + 0.5
    return points, scale, gray.width, gray.height


def _energy(coord: npt.NDArray[numpy.float64]) -> float:
    """Energy of the first differences of the profile of ``coord`` (1 px bins)."""
    import numpy as np

    bins = np.floor(coord - coord.min() + 0.5).astype(np.intp)  # pixel centres mid-bin
    profile = np.bincount(bins).astype(np.float64)
    return float(np.square(np.diff(profile)).sum())


def _projections(points: npt.NDArray[numpy.float64], angle: float) -> npt.NDArray[numpy.float64]:
    """Each point's position across lines of slope ``angle`` degrees (rising right)."""
    radians = math.radians(angle)
    result: npt.NDArray[numpy.float64] = points[:, 1] * math.cos(radians) + points[:, 0] * (
        math.sin(radians)
    )
    return result


def _coarse_angle(points: npt.NDArray[numpy.float64]) -> tuple[float, float, float]:
    """The slope (degrees, to half a degree) whose profile is sharpest, how much it stands
    out from the others (0-1), and its energy."""
    import numpy as np

    coarse = np.arange(-MAX_SKEW, MAX_SKEW + 0.01, 0.5)
    energies = np.array([_energy(_projections(points, a)) for a in coarse])
    top = float(energies.max())
    stand_out = (1 - float(np.median(energies)) / top) if top else 0.0
    return float(coarse[int(energies.argmax())]), stand_out, top


def _fine_angle(points: npt.NDArray[numpy.float64], best: float) -> float:
    """The slope near ``best`` whose profile is sharpest, to hundredths of a degree."""
    import numpy as np

    for step in (0.1, 0.02):
        angles = np.arange(best - 5 * step, best + 5.01 * step, step)
        found = np.array([_energy(_projections(points, a)) for a in angles])
        index = int(found.argmax())
        best = float(angles[index])
        top = float(found[index])
        if 0 < index < len(found) - 1:  # a parabola through the peak and its neighbours
            left, right = found[index - 1], found[index + 1]
            bend = left - 2 * top + right
            if bend < 0:
                best += step * 0.5 * float(left - right) / float(bend)
    return best


def _turn(
    points: npt.NDArray[numpy.float64], width: int, height: int, rotation: int
) -> npt.NDArray[numpy.float64]:
    """The points of a ``width`` x ``height`` image turned clockwise by ``rotation``."""
    import numpy as np

    x, y = points[:, 0], points[:, 1]
    if rotation == 90:
        return np.stack([height - y, x], axis=1)
    if rotation == 180:
        return np.stack([width - x, height - y], axis=1)
    if rotation == 270:
        return np.stack([y, width - x], axis=1)
    return points


@dataclass(frozen=True)
class _Lines:
    """What the text lines of a page, laid flat at a slope, say."""

    count: int  # lines with an x-height band
    runs: int  # runs of ink across the lines, text lines or not
    share: float  # of the ink, the part in those lines
    up: float  # ink above the bands less ink below, over both (-1 to 1; > 0 upright)
    height: float  # the median text line's height, in working pixels


def _text_lines(points: npt.NDArray[numpy.float64], skew: float) -> _Lines:
    """The text lines of ``points`` (lines of slope ``skew``), found in vertical strips."""
    import numpy as np

    radians = math.radians(skew)
    across = _projections(points, skew)
    along = points[:, 0] * math.cos(radians) - points[:, 1] * math.sin(radians)
    across = across - across.min()
    along = along - along.min()
    strips = max(1, min(12, round((float(along.max()) + 1) / STRIP)))
    width = (float(along.max()) + 1) / strips
    rows = np.floor(across).astype(np.intp)
    size = int(rows.max()) + 1
    column = np.minimum((along / width).astype(np.intp), strips - 1)
    profiles = np.bincount(column * size + rows, minlength=strips * size).reshape(strips, size)
    above_total = below_total = kept = 0.0
    count = found = 0
    heights: list[int] = []
    for profile in profiles.astype(np.float64):
        runs = [(a, b) for a, b in _runs(profile > 0.02 * width) if b - a >= 4]
        if not runs:
            continue
        typical = float(np.median([b - a for a, b in runs]))
        found += len(runs)
        for start, end in runs:
            if not 0.6 * typical <= end - start <= 1.6 * typical:
                continue
            line = profile[start:end]
            band = np.nonzero(line >= 0.5 * line.max())[0]
            top, bottom = int(band[0]), int(band[-1]) + 1
            if bottom - top > 0.8 * (end - start) or line.sum() > 0.8 * width * (end - start):
                continue  # no band (capitals, digits) or a solid blob (a photo, a rule)
            above_total += float(line[:top].sum())
            below_total += float(line[bottom:].sum())
            kept += float(line.sum())
            count += 1
            heights.append(end - start)
    total = above_total + below_total
    up = (above_total - below_total) / total if total else 0.0
    return _Lines(
        count, found, kept / len(points), up, float(np.median(heights)) if heights else 0.0
    )


def _runs(mask: npt.NDArray[numpy.bool_]) -> list[tuple[int, int]]:
    """(start, end) of each run of True in ``mask``."""
    import numpy as np

    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(
        zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist(), strict=True)
    )


def measure_orientation(image: Image.Image) -> Orientation:
    """The orientation and skew of ``image`` (a page as it lies)."""
    import numpy as np

    found = _ink_points(image)
    if found is None:
        return Orientation(note="blank: no ink to measure")
    points, _scale, width, height = found
    rng = np.random.default_rng(0)
    sample = points if len(points) <= SAMPLE else points[rng.choice(len(points), SAMPLE, False)]
    found_axes = {}
    for base in (0, 90):
        turned = _turn(sample, width, height, base)
        angle, peak, _ = _coarse_angle(turned[:COARSE_SAMPLE])
        fine = _fine_angle(turned, angle)
        found_axes[base] = (fine, peak, _energy(_projections(turned, fine)))
    base = 0 if found_axes[0][2] >= found_axes[90][2] else 90
    skew, peak, energy = found_axes[base]
    axis_margin = 1 - found_axes[90 - base][2] / energy if energy else 0.0
    lines = _text_lines(_turn(points, width, height, base), skew)
    rotation = base + (180 if lines.up < 0 else 0)
    length = float(width if base == 0 else height)
    regular = lines.count / lines.runs if lines.runs else 0.0
    text = min(1.0, lines.count / (3 * MIN_LINES)) * min(1.0, regular / 0.5)
    # ascenders of lines under MIN_HEIGHT px are a pixel or two: too few to count
    resolved = min(1.0, max(0.0, (lines.height - MIN_HEIGHT) / MIN_HEIGHT))
    up = min(1.0, abs(lines.up) / 0.3)
    confidence = round(text * resolved * min(up, min(1.0, axis_margin / 0.2)), 3)
    if lines.count < MIN_LINES:
        confidence = 0.0
    return Orientation(
        rotation=rotation,  # type: ignore[arg-type]
        skew=round(skew, 2),
        confidence=confidence,
        # the angle is resolved to (line height / line length): short lines say little
        skew_confidence=round(min(1.0, peak / 0.3) * text * min(1.0, length / 1000), 3),
        note=(
            f"{lines.count} text lines of {lines.runs} ({lines.share:.0%} of the ink, "
            f"{lines.height:.0f} px), axis margin "
            f"{axis_margin:.2f}, up/down {lines.up:+.2f}"
        ),
    )
