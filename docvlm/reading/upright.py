"""The page the model reads: turned upright and straightened, and the way back.

``upright`` measures a page (``docvlm.reading.orient``) and, where the measure is sure,
gives the reading path the page turned by its quarter turn and rotated by its skew, with
the ``Turn`` that maps every point of that image back to the page as scanned. Results are
read in the upright image and mapped back by ``Turn.to_page`` before they are recorded,
so every box in a record stays in the original page's pixels (the axis-aligned bounds of
the turned box; ``Turn.outline`` gives its four corners).
"""

from __future__ import annotations

from dataclasses import replace

from docvlm.reading.orient import MIN_CONFIDENCE, measure_orientation
from docvlm.reading.render import PageImage
from docvlm.reading.turn import Turn

__all__ = ["MIN_SKEW", "Turn", "turn_warning", "upright"]

#: A smaller skew is left alone: resampling the page would cost more than it straightens.
MIN_SKEW = 0.1


def turn_warning(number: int, turn: Turn) -> str | None:
    """The page warning that says the page was read turned (None when it was not)."""
    done = []
    if turn.rotation:
        done.append(f"turned {turn.rotation}° clockwise (confidence {turn.confidence:.2f})")
    if turn.skew:
        done.append(f"straightened by {turn.skew:+.1f}°")
    return f"page {number}: read {' and '.join(done)}" if done else None


def upright(page: PageImage, orient: bool = True) -> PageImage:
    """``page`` as the model should read it, with its ``turn`` (None when ``orient`` is
    off or the page was already turned). An unsure measure leaves the page as it lies."""
    if not orient or page.turn is not None:
        return page
    found = measure_orientation(page.image)
    sure = found.confidence >= MIN_CONFIDENCE
    if not sure:
        found = replace(found, rotation=0)
    skew = (
        found.skew
        if found.skew_confidence >= MIN_CONFIDENCE and abs(found.skew) >= MIN_SKEW
        else 0.0
    )
    turn = Turn.of(page.image.size, found, skew)
    warning = turn_warning(page.number, turn)
    warnings = (*page.warnings, warning) if warning else page.warnings
    return replace(page, image=turn.image(page.image), turn=turn, warnings=warnings)
