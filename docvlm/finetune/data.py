"""Training examples: reading the JSON Lines, checking each one, batching in a fixed order.

A record is ``{"image": "crops/a.png", "target": "..."}`` (image paths relative to the
file). Each image is padded to a white square, as at inference. Examples that cannot be
used (an unreadable image, a target longer than the task allows) are left out and
reported with the reason; the run goes on with the rest.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from docvlm.errors import InputError
from docvlm.reading.regions import crop_square
from docvlm.reading.render import to_rgb
from parsers import Box

__all__ = [
    "Example",
    "batch_order",
    "check_examples",
    "load_square",
    "read_examples",
    "split_held_out",
    "write_records",
]


@dataclass(frozen=True)
class Example:
    """One training pair."""

    image: Path
    target: str


def read_examples(path: Path, skipped: list[str] | None = None) -> list[tuple[Path, str]]:
    """(image path, target) pairs of a JSON Lines file; image paths relative to it.

    A bad line raises ``InputError``; with ``skipped``, it is left out instead and its
    reason (file, line and cause) appended there, so one broken line in a large file
    does not stop a run.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(
            f"cannot read the data file ({error.strerror})", source=str(path)
        ) from error
    examples = []
    bad: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            bad.append(f"line {number}: not JSON ({error})")
            continue
        try:
            image, target = Path(record["image"]), record["target"]
            if not isinstance(target, str):
                raise TypeError("target is not a string")
        except (KeyError, TypeError) as error:
            bad.append(f"line {number}: needs {{'image', 'target'}} ({error})")
            continue
        examples.append((image if image.is_absolute() else path.parent / image, target))
    if bad and (skipped is None or not examples):
        raise InputError(
            bad[0] + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""), source=str(path)
        )
    if not examples:
        raise InputError("no examples", source=str(path))
    if skipped is not None:
        skipped.extend(f"{path}: {reason}" for reason in bad)
    return examples


def write_records(records: Iterable[dict[str, Any]], path: Path) -> int:
    """Write records as JSON Lines (UTF-8), image paths relative to the file where they
    can be (so the folder moves as a whole); returns the number written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    rows = []
    for record in records:
        image = Path(record["image"]).resolve()
        relative = os.path.relpath(image, base) if image.anchor == base.anchor else str(image)
        rows.append({**record, "image": relative})
    lines = (json.dumps(record, ensure_ascii=False) for record in rows)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(rows)


def load_square(path: Path) -> Image.Image:
    """The image padded to a white square (right and bottom), RGB."""
    try:
        with Image.open(path) as image:
            image.load()
            page = to_rgb(image)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise InputError(f"cannot read the image ({error})", source=str(path)) from error
    return crop_square(page, Box(x0=0, y0=0, x1=page.width, y1=page.height)).image


def check_examples(
    pairs: list[tuple[Path, str]], count_tokens: Any, max_tokens: int
) -> tuple[list[Example], list[str]]:
    """Usable examples, and a line per example left out (file and reason)."""
    kept: list[Example] = []
    skipped: list[str] = []
    for image, target in pairs:
        where = image.resolve()  # a path relative to the JSONL means little on its own
        if not target.strip():
            skipped.append(f"{where}: empty target")
            continue
        if not image.is_file():
            skipped.append(f"{where}: no such file")
            continue
        try:
            with Image.open(image) as opened:
                opened.verify()
        except (OSError, UnidentifiedImageError, ValueError) as error:
            skipped.append(f"{where}: cannot read the image ({error})")
            continue
        tokens = int(count_tokens(target))
        if tokens > max_tokens:
            skipped.append(f"{where}: target is {tokens} tokens, the task allows {max_tokens}")
            continue
        kept.append(Example(image, target))
    return kept, skipped


def split_held_out(
    examples: list[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """(train, held out): a fixed random share, at least one of each when both are asked."""
    if fraction <= 0 or len(examples) < 2:
        return examples, []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    count = min(len(examples) - 1, max(1, round(fraction * len(examples))))
    held = set(order[:count])
    return (
        [e for i, e in enumerate(examples) if i not in held],
        [e for i, e in enumerate(examples) if i in held],
    )


def batch_order(count: int, batch_size: int, seed: int, start: int = 0) -> Iterator[list[int]]:
    """Endless batches of example indices, epoch after epoch, from batch number ``start``.

    Each epoch is its own shuffle (seeded by ``seed`` and the epoch number), so a resumed
    run sees exactly the batches the interrupted one would have.
    """
    per_epoch = -(-count // batch_size)
    epoch, skip = divmod(start, per_epoch)
    while True:
        order = list(range(count))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        for index in range(skip, per_epoch):
            yield order[index * batch_size : (index + 1) * batch_size]
        epoch, skip = epoch + 1, 0
