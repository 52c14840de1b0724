"""Pages in: PDFs rendered to images, and image files, as a lazy stream of ``PageImage``.

The type is sniffed from the content, never from the extension. PDFs render with
pypdfium2 by default (no system package, fastest here) or with pdf2image/poppler.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from PIL import Image, ImageOps

from docvlm.errors import (
    CorruptInputError,
    InputError,
    MissingDependencyError,
    PageRangeError,
    PasswordRequiredError,
    UnsupportedInputError,
)

__all__ = [
    "Backend",
    "PageImage",
    "PageSelection",
    "Source",
    "load_pages",
    "parse_pages",
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
    """1-based page numbers from ``"1-3,7"``, ``"5-"``, a list, or None (all pages)."""
    if selection is None:
        return list(range(1, count + 1))
    numbers: list[int] = []
    if isinstance(selection, str):
        for part in selection.replace(" ", "").split(","):
            if not part:
                continue
            first, dash, last = part.partition("-")
            try:
                start = int(first) if first else 1
                end = (int(last) if last else count) if dash else start
            except ValueError:
                raise PageRangeError(f"bad page range {part!r}", source=source) from None
            numbers.extend(range(start, end + 1))
    else:
        numbers = [int(n) for n in selection]
    for number in numbers:
        if not 1 <= number <= count:
            raise PageRangeError(
                f"page {number} is out of range (the document has {count} page(s))",
                source=source,
            )
    return list(dict.fromkeys(numbers))


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


def _read(source: Source, name: str) -> bytes | Path:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise InputError("no such file", source=name)
        if path.is_dir():
            raise UnsupportedInputError("is a directory, not a document", source=name)
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
) -> Iterator[PageImage]:
    """Yield the selected pages of a PDF or image source, rendering lazily, one at a time.

    Raises an ``InputError`` subclass that names the source (and page) on bad input.
    """
    name = source_name(source)
    if isinstance(source, Image.Image):
        for number in parse_pages(pages, 1, source=name):
            yield PageImage(name, number, to_rgb(source))
        return
    data = _read(source, name)
    head = data[:2048] if isinstance(data, bytes) else _head(data)
    kind = sniff(head)
    if kind == "pdf":
        render = _pdf2image if backend == "pdf2image" else _pdfium
        yield from render(data, name, pages, password, dpi)
    elif kind == "image":
        yield from _image_pages(data, name, pages)
    elif not head:
        raise UnsupportedInputError("the file is empty", source=name)
    else:
        raise UnsupportedInputError("not a PDF or a supported image (by content)", source=name)


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(2048)


def _image_pages(data: bytes | Path, name: str, pages: PageSelection) -> Iterator[PageImage]:
    try:
        image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        count = getattr(image, "n_frames", 1)
    except (OSError, Image.DecompressionBombError, ValueError) as error:
        raise CorruptInputError(f"cannot read the image: {error}", source=name) from error
    with image:
        for number in parse_pages(pages, count, source=name):
            try:
                image.seek(number - 1)
                image.load()
                yield PageImage(name, number, to_rgb(image.copy()))
            except (OSError, ValueError, Image.DecompressionBombError) as error:
                raise CorruptInputError(
                    f"cannot decode the image: {error}", source=name, page=number
                ) from error


def _pdfium(
    data: bytes | Path, name: str, pages: PageSelection, password: str | None, dpi: int
) -> Iterator[PageImage]:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data, password=password)
    except pdfium.PdfiumError as error:
        message = str(error)
        if "password" in message.lower():
            hint = "a wrong password was given" if password else "it is encrypted: give a password"
            raise PasswordRequiredError(hint, source=name) from error
        raise CorruptInputError(f"cannot open the PDF ({message})", source=name) from error
    try:
        for number in parse_pages(pages, len(document), source=name):
            try:
                page = document[number - 1]
                bitmap = page.render(scale=dpi / 72)
                image = bitmap.to_pil().convert("RGB")
            except pdfium.PdfiumError as error:
                raise CorruptInputError(
                    f"cannot render the page ({error})", source=name, page=number
                ) from error
            yield PageImage(name, number, image, float(dpi))
    finally:
        document.close()


def _pdf2image(
    data: bytes | Path, name: str, pages: PageSelection, password: str | None, dpi: int
) -> Iterator[PageImage]:
    try:
        import pdf2image
        from pdf2image import exceptions
    except ImportError as error:
        raise MissingDependencyError(
            "the pdf2image backend needs: pip install pdf2image (and poppler-utils)"
        ) from error
    path_or_bytes = data
    try:
        info = (
            pdf2image.pdfinfo_from_bytes(path_or_bytes, userpw=password)
            if isinstance(path_or_bytes, bytes)
            else pdf2image.pdfinfo_from_path(str(path_or_bytes), userpw=password)
        )
    except exceptions.PDFInfoNotInstalledError as error:
        raise MissingDependencyError("the pdf2image backend needs poppler-utils") from error
    except (exceptions.PDFPageCountError, exceptions.PDFSyntaxError) as error:
        text = str(error)
        if "ncorrect password" in text or "password" in text.lower():
            raise PasswordRequiredError(
                "a wrong password was given" if password else "it is encrypted: give a password",
                source=name,
            ) from error
        raise CorruptInputError(f"cannot open the PDF ({text.strip()})", source=name) from error
    for number in parse_pages(pages, int(info["Pages"]), source=name):
        kwargs = {"dpi": dpi, "first_page": number, "last_page": number, "userpw": password}
        images = (
            pdf2image.convert_from_bytes(path_or_bytes, **kwargs)
            if isinstance(path_or_bytes, bytes)
            else pdf2image.convert_from_path(str(path_or_bytes), **kwargs)
        )
        if not images:
            raise CorruptInputError("poppler rendered nothing", source=name, page=number)
        yield PageImage(name, number, images[0].convert("RGB"), float(dpi))
