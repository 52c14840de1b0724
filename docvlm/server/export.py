"""``docvlm view OUT --export DIR``: the viewer's pages as PNG files, boxes drawn, and with
``--formats`` each document's archive formats written from its record.

Each page is re-rendered from its source exactly as the viewer shows it
(``FileArchive.page_png``) and drawn on by ``docvlm.formats.pictures``; the files are
``DIR/<document number>-<source name>/page-<n>.png``. A page whose source cannot be found
or rendered is named and skipped; the others are written.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from docvlm.formats.files import FORMATS, write_formats
from docvlm.formats.pictures import draw_page
from docvlm.server.archive import PageImageError
from docvlm.server.outputs import FileArchive

__all__ = ["Exported", "export_pictures"]


@dataclass
class Exported:
    """What an export wrote, and each page it could not draw with the reason."""

    written: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _folder_name(number: int, source: str) -> str:
    stem = Path(source.partition("!")[2] or source).stem or "document"
    return f"{number + 1:04d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', stem)[:80]}"


def export_pictures(
    archive: FileArchive,
    folder: Path,
    formats: Sequence[str] = (),
) -> Exported:
    """Every page of every Document of ``archive`` as a PNG with its boxes, into ``folder``,
    and each document's ``formats`` (``docvlm.formats.files``) beside them, written from
    the records: no model runs again."""
    done = Exported()
    total, _ = archive.summaries(0, 0)
    for number in range(total):
        document = archive.document(number)
        target = folder / _folder_name(number, document.source)
        if formats:
            _formats(archive, number, target, formats, done)
        for page in document.pages:
            try:
                png = archive.page_png(number, page.number)
            except PageImageError as error:
                done.failed.append(f"{document.source}, page {page.number}: {error}")
                continue
            picture = draw_page(Image.open(io.BytesIO(png)), page)
            target.mkdir(parents=True, exist_ok=True)
            path = target / f"page-{page.number:04d}.png"
            picture.save(path, "PNG", compress_level=3)
            done.written.append(path)
    return done


def _formats(
    archive: FileArchive, number: int, target: Path, formats: Sequence[str], done: Exported
) -> None:
    document = archive.document(number)
    original: bytes | None = None
    reading = [name for name in formats if FORMATS[name].reads_original]  # the PDF
    if reading:
        try:
            original = archive.original(number)
        except (PageImageError, OSError) as error:
            done.failed += [f"{document.source}: {name}: {error}" for name in reading]
            formats = [name for name in formats if name not in reading]
    target.mkdir(parents=True, exist_ok=True)
    failed = write_formats(document, target, formats, original=original)
    done.failed += [f"{document.source}: {name}: {why}" for name, why in failed.items()]
    done.written += sorted(p for p in target.rglob("*") if p.is_file() and p.suffix != ".png")
