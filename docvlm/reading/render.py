"""Pages in: PDFs rendered to images, and image files, as a lazy stream of ``PageImage``.

The type is sniffed from the content, never from the extension. PDFs render with
pypdfium2 by default (no system package, fastest here) or with pdf2image/poppler.
"""

from __future__ import annotations

import io
import math
import stat
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from PIL import Image, ImageOps

from docvlm.errors import (
    CorruptInputError,
    InputError,
    InputLimitError,
    MissingDependencyError,
    PageRangeError,
    PasswordRequiredError,
    UnsupportedInputError,
)
from docvlm.reading.decoding import decoder_messages, image_error
from docvlm.reading.pdf import ENCRYPTED, InProcessPdf, PdfReader
from docvlm.settings import Limits

if TYPE_CHECKING:
    from docvlm.reading.turn import Turn

__all__ = [
    "Backend",
    "PageFailure",
    "PageImage",
    "PageSelection",
    "Source",
    "decoder_messages",
    "head_bytes",
    "image_error",
    "load_pages",
    "not_regular",
    "parse_pages",
    "pdf_scale",
    "read_source",
    "rendered_size",
    "sniff",
    "source_name",
    "to_rgb",
]

Source = str | Path | bytes | Image.Image | BinaryIO
PageSelection = str | Sequence[int] | None
Backend = Literal["pypdfium2", "pdf2image"]
Kind = Literal["pdf", "image"]

_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"GIF8",
    b"\x00\x00\x00\x0cjP  ",
    b"\xff\x4f\xff\x51",
    b"P4",
    b"P5",
    b"P6",
)


@dataclass(frozen=True)
class PageImage:
    """One page as an RGB image; ``number`` counts from 1."""

    source: str
    number: int
    image: Image.Image
    dpi: float | None = None
    warnings: tuple[str, ...] = ()
    turn: Turn | None = None  # set when ``image`` is the page turned upright (upright.py)


@dataclass(frozen=True)
class PageFailure:
    """A page that could not be rendered; the pages after it still are."""

    source: str
    number: int
    error: InputError


def source_name(source: Source) -> str:
    """How a source is named in results and errors."""
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, bytes):
        return "<bytes>"
    if isinstance(source, Image.Image):
        return "<image>"
    return str(getattr(source, "name", "<stream>"))


def sniff(head: bytes) -> Kind | None:
    """``pdf`` or ``image`` from the first bytes of a file, or None."""
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    return None


def parse_pages(selection: PageSelection, count: int, *, source: str) -> list[int]:
    """1-based page numbers from ``"1-3,7"``, ``"5-"``, a list, or None (all pages).

    Each range's bounds are checked against ``count`` before it is expanded, so a
    selection such as ``1-99999999999`` fails at once instead of building a huge list;
    the result never holds more than ``count`` numbers.
    """
    if selection is None:
        return list(range(1, count + 1))

    def check(number: int) -> None:
        if not 1 <= number <= count:
            raise PageRangeError(
                f"page {number} is out of range (the document has {count} page(s))",
                source=source,
            )

    chosen: dict[int, None] = {}
    if isinstance(selection, str):
        for part in selection.replace(" ", "").split(","):
            if not part:
                continue
            first, dash, last = part.partition("-")
            try:
                start = int(first) if first else 1
                end = (int(last) if last else count) if dash else start
            except ValueError:
                raise PageRangeError(f"bad page range {part[:40]!r}", source=source) from None
            if start > end and dash and last:
                raise PageRangeError(
                    f"page range {part!r} is reversed (write {end}-{start})", source=source
                )
            check(start)
            if start <= end:
                check(end)
                chosen.update(dict.fromkeys(range(start, end + 1)))
            else:  # "5-" on a shorter document: the checked start page alone
                chosen[start] = None
    else:
        for item in selection:
            number = int(item)
            check(number)
            chosen[number] = None
    if not chosen:
        raise PageRangeError(
            f"the page selection {str(selection)[:40]!r} names no page", source=source
        )
    return list(chosen)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with EXIF orientation applied; alpha on white; 16-bit scaled; CMYK converted."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Scale by the real maximum: 12-bit data stored in 16 bits would otherwise be dark.
        array = image.convert("I")
        _low, high = array.getextrema()
        scale = 255.0 / high if isinstance(high, int | float) and high > 255 else 1.0
        image = array.point(lambda v: v * scale).convert("L")
        return image.convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


#: What a path that is not a regular file is, by its mode.
_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def not_regular(path: Path, name: str) -> InputError | None:
    """Why ``path`` (links followed) may not be opened, or None for a regular file: a
    named pipe would wait for a writer forever, a device may never end."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        return InputError(f"cannot read ({error})", source=name)
    if stat.S_ISREG(mode):
        return None
    kind = next((kind for test, kind in _SPECIAL_FILES if test(mode)), "a special file")
    return UnsupportedInputError(f"{kind}, not a regular file", source=name)


def read_source(source: Source, name: str) -> bytes | Path:
    """The bytes of an in-memory source, or the checked path of a regular file (not read)."""
    if isinstance(source, bytes):
        return source
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise InputError("no such file", source=name)
        if path.is_dir():
            raise UnsupportedInputError("is a directory, not a document", source=name)
        if (refused := not_regular(path, name)) is not None:
            raise refused
        return path
    assert not isinstance(source, Image.Image)
    return source.read()


def load_pages(
    source: Source,
    *,
    pages: PageSelection = None,
    password: str | None = None,
    dpi: int = 150,
    backend: Backend = "pypdfium2",
    limits: Limits | None = None,
    reader: PdfReader | None = None,
) -> Iterator[PageImage | PageFailure]:
    """Yield the selected pages of a PDF or image source, rendering lazily, one at a time.

    A page that fails to render is yielded as a ``PageFailure`` and the next pages follow;
    a source that cannot be opened at all raises an ``InputError`` naming it. ``reader``
    renders PDFs (in-process pypdfium2 by default; a ``RenderWorker`` adds a timeout).
    """
    limits = limits or Limits()
    name = source_name(source)
    if isinstance(source, Image.Image):
        for number in parse_pages(pages, 1, source=name):
            image, notes = _fitted(to_rgb(_checked(source, limits, name, number)), limits)
            yield PageImage(name, number, image, None, notes)
        return
    data = read_source(source, name)
    head = head_bytes(data)
    kind = sniff(head)
    if kind == "pdf":
        if backend == "pdf2image":
            yield from _pdf2image(data, name, pages, password, dpi, limits)
        else:
            yield from _pdf_pages(
                data, name, pages, password, dpi, limits, reader or InProcessPdf()
            )
    elif kind == "image":
        yield from _image_pages(data, name, pages, limits)
    elif not head:
        raise UnsupportedInputError("the file is empty", source=name)
    else:
        raise UnsupportedInputError("not a PDF or a supported image (by content)", source=name)


def head_bytes(data: bytes | Path, size: int = 2048) -> bytes:
    """The first ``size`` bytes of a source, enough to sniff its type."""
    if isinstance(data, bytes):
        return data[:size]
    with data.open("rb") as handle:
        return handle.read(size)


#: Images up to this many times the pixel limit are reduced to fit; larger ones are refused.
BOMB_FACTOR = 4


def _checked(image: Image.Image, limits: Limits, name: str, number: int) -> Image.Image:
    """Refuse an image far over the pixel limit (a bomb) before decoding it."""
    if image.width * image.height > BOMB_FACTOR * limits.max_page_pixels:
        raise InputLimitError(
            f"{image.width} x {image.height} pixels is more than {BOMB_FACTOR} times the limit "
            f"of {limits.max_page_pixels:,} (refused as a decompression bomb)",
            source=name,
            page=number,
        )
    return image


def _fitted(image: Image.Image, limits: Limits) -> tuple[Image.Image, tuple[str, ...]]:
    """Reduce an image over the pixel limit by the smallest whole factor that fits."""
    pixels = image.width * image.height
    if pixels <= limits.max_page_pixels:
        return image, ()
    factor = math.ceil(math.sqrt(pixels / limits.max_page_pixels))
    while (image.width // factor) * (image.height // factor) > limits.max_page_pixels:
        factor += 1
    note = (
        f"reduced {factor}x from {image.width} x {image.height} to stay under "
        f"{limits.max_page_pixels:,} pixels"
    )
    return image.reduce(factor), (note,)


def _image_pages(
    data: bytes | Path, name: str, pages: PageSelection, limits: Limits
) -> Iterator[PageImage | PageFailure]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        count = getattr(image, "n_frames", 1)
    except Image.DecompressionBombError as error:
        raise InputLimitError(image_error(error), source=name) from error
    except (OSError, ValueError, SyntaxError) as error:
        raise CorruptInputError(image_error(error), source=name) from error
    with image:
        if count > limits.max_pages:
            raise InputLimitError(
                f"{count:,} frames, over the limit of {limits.max_pages:,}", source=name
            )
        for number in parse_pages(pages, count, source=name):
            try:
                image.seek(number - 1)
                _checked(image, limits, name, number)
                with warnings.catch_warnings(), decoder_messages(image.format) as noise:
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    image.load()
                page, notes = _fitted(to_rgb(image.copy()), limits)
                yield PageImage(name, number, page, None, (*noise, *notes))
            except InputError as error:
                yield PageFailure(name, number, error)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
                failure = CorruptInputError(image_error(error), source=name, page=number)
                yield PageFailure(name, number, failure)


def _pdf_pages(
    data: bytes | Path,
    name: str,
    pages: PageSelection,
    password: str | None,
    dpi: int,
    limits: Limits,
    reader: PdfReader,
) -> Iterator[PageImage | PageFailure]:
    sizes = reader.open(data, password, name)
    try:
        if len(sizes) > limits.max_pages:
            raise InputLimitError(
                f"{len(sizes):,} pages, over the limit of {limits.max_pages:,}", source=name
            )
        for number in parse_pages(pages, len(sizes), source=name):
            scale, notes = pdf_scale(*sizes[number - 1], dpi, limits)
            try:
                image = reader.render(number - 1, scale, name)
            except InputError as error:
                yield PageFailure(name, number, error)
                continue
            yield PageImage(name, number, image, round(scale * 72, 2), notes)
    finally:
        reader.close()


def rendered_size(width: float, height: float, scale: float) -> tuple[int, int]:
    """Pixels of a page of ``width`` x ``height`` points at ``scale``: pypdfium2 rounds up.

    ``inspect`` and ``convert`` both use it, so they report the same size."""
    return math.ceil(width * scale), math.ceil(height * scale)


def pdf_scale(
    width: float, height: float, dpi: int, limits: Limits
) -> tuple[float, tuple[str, ...]]:
    """The scale (pixels per point) a page renders at, lowered to fit the pixel limit."""
    scale = dpi / 72
    w, h = rendered_size(width, height, scale)
    if w * h <= limits.max_page_pixels:
        return scale, ()
    scale = math.sqrt(limits.max_page_pixels / max(width * height, 1.0))
    # the renderer rounds sizes up: step down until the rounded size fits
    while math.prod(rendered_size(width, height, scale)) > limits.max_page_pixels:
        scale *= 0.999
    note = (
        f"rendered at {scale * 72:.0f} dpi instead of {dpi} to stay under "
        f"{limits.max_page_pixels:,} pixels"
    )
    return scale, (note,)


def _pdf2image(
    data: bytes | Path,
    name: str,
    pages: PageSelection,
    password: str | None,
    dpi: int,
    limits: Limits,
) -> Iterator[PageImage | PageFailure]:
    try:
        import pdf2image
        from pdf2image import exceptions
    except ImportError as error:
        raise MissingDependencyError(
            "the pdf2image backend needs: pip install 'docvlm[pdf2image]' (and poppler-utils)"
        ) from error
    secret = password or ""
    try:
        info = (
            pdf2image.pdfinfo_from_bytes(data, userpw=secret)
            if isinstance(data, bytes)
            else pdf2image.pdfinfo_from_path(str(data), userpw=secret)
        )
    except exceptions.PDFInfoNotInstalledError as error:
        raise MissingDependencyError("the pdf2image backend needs poppler-utils") from error
    except (exceptions.PDFPageCountError, exceptions.PDFSyntaxError) as error:
        text = str(error)
        if "password" in text.lower():
            raise PasswordRequiredError(
                "a wrong password was given" if password else ENCRYPTED,
                source=name,
            ) from error
        raise CorruptInputError(f"cannot open the PDF ({text.strip()})", source=name) from error
    count = int(info["Pages"])
    if count > limits.max_pages:
        raise InputLimitError(
            f"{count:,} pages, over the limit of {limits.max_pages:,}", source=name
        )
    for number in parse_pages(pages, count, source=name):
        if isinstance(data, bytes):
            images = pdf2image.convert_from_bytes(
                data, dpi=dpi, first_page=number, last_page=number, userpw=secret
            )
        else:
            images = pdf2image.convert_from_path(
                str(data), dpi=dpi, first_page=number, last_page=number, userpw=secret
            )
        if not images:
            failure = CorruptInputError("poppler rendered nothing", source=name, page=number)
            yield PageFailure(name, number, failure)
            continue
        yield PageImage(name, number, images[0].convert("RGB"), float(dpi))
