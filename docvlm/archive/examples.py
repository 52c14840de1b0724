"""Training examples from corrections: the crop the model saw and the corrected target,
in the task's training format (``docvlm data corrections``; ``docvlm finetune --data``
takes them as it takes the converted datasets).

- table: the grid as HTML (``<thead>``/``<tbody>``, spans, each cell's content), with
  ``coords`` location tokens for the cells that have a box (as the model wrote them);
- text: one line per line, each after its box's location tokens when it has one;
- molecule: RDKit's canonical SMILES;
- music: normalised ``**kern``.

The crop is rendered again from the record's source (its path as written, absolute or
relative to ``root``), at the DPI the conversion used, and padded to a white square as the
model saw it. A result that cannot be made an example (its source is gone, a page does not
render) is left out with the reason, and so is one a person corrected only in some lines
or cells without vouching for the rest (``review.partly_corrected``): its other lines are
the model's, unchecked. Corrected whole (``value``) or on a page marked reviewed, it is an
example.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from docvlm.archive.corrections import corrected_documents
from docvlm.archive.edits import frame_of, read_log, written
from docvlm.archive.output import Output
from docvlm.archive.review import partly_corrected
from docvlm.document import Document
from docvlm.errors import InputError
from docvlm.reading.regions import crop_square
from docvlm.reading.render import PageFailure, load_pages
from docvlm.results import Page
from docvlm.settings import Limits

__all__ = ["TRAINABLE", "correction_examples"]

#: The tasks whose corrections make training examples.
TRAINABLE = ("table", "text", "molecule", "music")


def _page_image(source: Path, page: Page, dpi: int, limits: Limits) -> Image.Image:
    for item in load_pages(
        source, pages=[page.number], dpi=round(page.dpi) if page.dpi else dpi, limits=limits
    ):
        if isinstance(item, PageFailure):
            raise item.error
        image = item.image
        if page.width and page.height and image.size != (page.width, page.height):
            image = image.resize((page.width, page.height), Image.Resampling.LANCZOS)
        return image
    raise InputError("no such page", source=str(source), page=page.number)


def _source(document: Document, roots: list[Path]) -> Path:
    given = Path(document.source)
    for candidate in [given] if given.is_absolute() else [r / given for r in roots]:
        if candidate.is_file():
            return candidate
    raise InputError("the source is not found to crop from (give --root)", source=document.source)


def correction_examples(
    output: Output,
    task: str,
    images: Path,
    *,
    root: Path | None = None,
    dpi: int = 150,
    limits: Limits | None = None,
    skipped: list[str] | None = None,
) -> Iterator[dict[str, str]]:
    """``{"image", "target"}`` records of the corrected ``task`` results of ``output``
    (``Output.existing(path)``), their crops saved as PNG in ``images``; a result left out
    is said in ``skipped`` (source, page and cause)."""
    if task not in TRAINABLE:
        raise ValueError(f"task {task!r} has no training format; choose {', '.join(TRAINABLE)}")
    limits = limits or Limits()
    roots = [r for r in (root, Path.cwd(), output.path.parent) if r is not None]
    images.mkdir(parents=True, exist_ok=True)
    partial = partly_corrected(read_log(output.corrections_file))
    for document in corrected_documents(output):
        for page in document.pages:
            chosen = []
            for index, result in enumerate(page.results):
                if result.task != task or not result.corrected:
                    continue
                if (document.sha256, page.number, index) not in partial:
                    chosen.append((index, result))
                elif skipped is not None:  # its other parts are the model's, unchecked
                    parts = "lines" if result.task == "text" else "cells"
                    skipped.append(
                        f"{document.source}, page {page.number}, result {index}: only some "
                        f"{parts} were corrected: correct it whole or mark the page reviewed "
                        "to train on it"
                    )
            if not chosen:
                continue
            if page.rotation or page.skew:
                # the model read this page turned: its crops are not the scan's boxes
                if skipped is not None:
                    skipped.append(
                        f"{document.source}, page {page.number}: read turned (rotation "
                        f"{page.rotation}, skew {page.skew}); its examples are not written yet"
                    )
                continue
            try:
                picture = _page_image(_source(document, roots), page, dpi, limits)
            except InputError as error:
                if skipped is not None:
                    skipped.append(str(error))
                continue
            for index, result in chosen:
                text = written(result, frame_of(result.box))
                if text is None:
                    if skipped is not None:
                        skipped.append(f"{document.source}, page {page.number}: nothing to learn")
                    continue
                name = f"{(document.sha256 or 'x')[:16]}-p{page.number}-r{index}.png"
                crop_square(picture, result.box).image.save(images / name)
                yield {"image": str(images / name), "target": text}
