"""Searchable PDF: the original pages with an invisible text layer at each line's box.

One PDF per document, one page per page read, in the document's page order.

- PDF source: each page is copied with pikepdf as it is (content streams, images, fonts
  and annotations byte for byte; nothing rendered again) and the text layer, one fpdf2
  page per page, is placed over it as a Form XObject. pikepdf computes the placement
  (``calc_form_xobject_placement``) so the page's ``/Rotate`` and CropBox are undone:
  the layer lands where the page is shown, which is where docvlm rendered it.
- Image source: fpdf2 embeds the image as stored where a PDF can hold it (JPEG bytes as
  ``DCTDecode``, single-strip G4 TIFF as ``CCITTFaxDecode``) and otherwise losslessly
  (PNG, other TIFFs, further TIFF frames: ``FlateDecode`` of the same pixels), at the
  size its DPI says (72 dpi, one pixel a point, when it states none). An image with an
  EXIF rotation is embedded turned upright (losslessly), as docvlm read it; modes a PDF
  has no colour space for (16-bit, float) are embedded as the RGB docvlm read.

The text layer is ``docvlm.formats.textlayer``. The original is found from
``Document.source`` and checked against ``Document.sha256`` when the document has one.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageOps

from docvlm.errors import (
    CorruptInputError,
    InputError,
    MissingDependencyError,
    PageRangeError,
    PasswordRequiredError,
    SourceChangedError,
    UnsupportedInputError,
)
from docvlm.formats.common import Converted
from docvlm.formats.textlayer import draw_page, new_layer
from docvlm.reading.render import head_bytes, sniff, to_rgb

if TYPE_CHECKING:
    from docvlm.results import Page

__all__ = ["original_source", "write_searchable_pdf"]

#: Image modes fpdf2 embeds as they are (others have no PDF colour space).
_PDF_MODES = frozenset({"1", "L", "LA", "RGB", "RGBA", "P", "PA", "CMYK"})
#: The resolution assumed for an image that states none: one pixel a point.
_DEFAULT_DPI = 72.0


def write_searchable_pdf(
    document: Converted,
    path: str | Path,
    *,
    source: str | Path | bytes | None = None,
    password: str | None = None,
) -> Path:
    """Write ``document`` as a searchable PDF at ``path`` and return the path.

    ``source`` is the original (a path or its bytes) when ``Document.source`` does not
    lead to it; ``password`` opens an encrypted PDF (the output is not encrypted).
    Raises ``InputError`` when the original is missing, ``SourceChangedError`` when its
    SHA-256 is not the recorded one, ``ValueError`` when no page was read.
    """
    if not document.pages:
        cause = document.error or "the document has no pages"
        raise ValueError(f"{document.source}: no page was read ({cause}); no PDF to write")
    name, data = original_source(document, source)
    kind = sniff(head_bytes(data))
    out = Path(path)
    if kind == "pdf":
        _pdf_source(document.pages, data, name, password, out)
    elif kind == "image":
        _image_source(document.pages, data, name, out)
    else:
        raise UnsupportedInputError("not a PDF or a supported image (by content)", source=name)
    return out


def original_source(
    document: Converted, source: str | Path | bytes | None = None
) -> tuple[str, bytes | Path]:
    """The name and the bytes (or checked path) of the file ``document`` was read from."""
    data: bytes | Path
    if isinstance(source, bytes):
        name, data = "<bytes>", source
    else:
        name = str(source) if source is not None else document.source
        if source is None and name.startswith("<"):
            raise InputError(
                "the document was read from memory: pass source= (the original file or bytes)",
                source=name,
            )
        path = Path(name)
        if not path.is_file():
            raise InputError(
                "no such file: the original is needed to write a searchable PDF "
                "(pass source= if it moved)",
                source=name,
            )
        data = path
    if document.sha256 is not None:
        actual = _sha256(data)
        if actual != document.sha256:
            raise SourceChangedError(
                f"the file changed since it was converted (SHA-256 {actual[:12]}…, "
                f"recorded {document.sha256[:12]}…)",
                source=name,
            )
    return name, data


def _sha256(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with data.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pikepdf() -> Any:
    try:
        import pikepdf
    except ImportError as error:
        raise MissingDependencyError(
            "searchable PDFs need pikepdf and fpdf2: pip install 'docvlm[pdf]'"
        ) from error
    return pikepdf


def _pdf_source(
    pages: Sequence[Page], data: bytes | Path, name: str, password: str | None, out: Path
) -> None:
    pikepdf = _pikepdf()

    def opened(given: str) -> Any:
        return pikepdf.open(io.BytesIO(data) if isinstance(data, bytes) else data, password=given)

    try:
        try:  # without the password first: a run-wide one makes pikepdf warn on plain PDFs
            original = opened("")
        except pikepdf.PasswordError:
            if not password:
                raise
            original = opened(password)
    except pikepdf.PasswordError as error:
        hint = "a wrong password was given" if password else "it is encrypted: give password="
        raise PasswordRequiredError(hint, source=name) from error
    except pikepdf.PdfError as error:
        raise CorruptInputError(f"cannot open the PDF ({error})", source=name) from error
    with original:
        count = len(original.pages)
        layer = new_layer(pages)
        boxes = []
        for page in pages:
            if not 1 <= page.number <= count:
                raise PageRangeError(
                    f"page {page.number} was read but the file has {count} page(s)",
                    source=name,
                    page=page.number,
                )
            source_page = original.pages[page.number - 1]
            box = pikepdf.Rectangle(source_page.cropbox)
            turned = int(source_page.obj.get("/Rotate", 0)) % 180 == 90
            width, height = (box.height, box.width) if turned else (box.width, box.height)
            layer.add_page(format=(width, height))
            draw_page(layer, page, width, height)
            boxes.append(box)
        text = pikepdf.open(io.BytesIO(bytes(layer.output())))
        with text, pikepdf.new() as result:
            for index, page in enumerate(pages):
                result.pages.append(original.pages[page.number - 1])
                _overlay(pikepdf, result, result.pages[-1], text.pages[index], boxes[index])
            # streams are written as they are: an unfiltered original stays byte for byte
            result.save(out, compress_streams=False)


def _overlay(pikepdf: Any, pdf: Any, page: Any, layer: Any, box: Any) -> None:
    """Place ``layer`` over ``page`` as a Form XObject, keeping the page's own content
    stream objects untouched (pikepdf's ``add_overlay`` would merge them into one)."""
    form = pdf.copy_foreign(layer.as_form_xobject())
    name = page.add_resource(form, pikepdf.Name.XObject, prefix="DocvlmText")
    placement = page.calc_form_xobject_placement(form, name, box)
    page.contents_add(b"q\n", prepend=True)  # isolate the page's graphics state
    page.contents_add(b"Q\n" + placement)


def _image_source(pages: Sequence[Page], data: bytes | Path, name: str, out: Path) -> None:
    layer = new_layer(pages)
    try:
        image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (OSError, ValueError, SyntaxError) as error:
        raise CorruptInputError(f"cannot open the image ({error})", source=name) from error
    with image:
        frames = getattr(image, "n_frames", 1)
        for page in pages:
            if not 1 <= page.number <= frames:
                raise PageRangeError(
                    f"page {page.number} was read but the image has {frames} frame(s)",
                    source=name,
                    page=page.number,
                )
            try:
                image.seek(page.number - 1)
                embedded = _embeddable(image, data, frames)
            except (OSError, ValueError, SyntaxError) as error:
                raise CorruptInputError(
                    f"cannot decode the image ({error})", source=name, page=page.number
                ) from error
            size = embedded.size if isinstance(embedded, Image.Image) else image.size
            dpi_x, dpi_y = _dpi(image)
            width, height = size[0] * 72 / dpi_x, size[1] * 72 / dpi_y
            layer.add_page(format=(width, height))
            layer.image(embedded, x=0, y=0, w=width, h=height)
            draw_page(layer, page, width, height)
    layer.output(str(out))


def _embeddable(image: Image.Image, data: bytes | Path, frames: int) -> Image.Image | io.BytesIO:
    """The file's own bytes when fpdf2 can embed them as they are (it keeps JPEG and G4
    data, and decodes the rest losslessly); otherwise the frame's pixels, upright."""
    upright = image.getexif().get(0x0112, 1) in (None, 1)
    if frames == 1 and upright and image.mode in _PDF_MODES:
        return io.BytesIO(data if isinstance(data, bytes) else data.read_bytes())
    frame = ImageOps.exif_transpose(image.copy()) or image.copy()
    return frame if frame.mode in _PDF_MODES else to_rgb(frame)


def _dpi(image: Image.Image) -> tuple[float, float]:
    stated = image.info.get("dpi")
    try:
        x, y = (float(v) for v in stated) if stated else (0.0, 0.0)
    except (TypeError, ValueError):
        x = y = 0.0
    if x <= 1 or y <= 1:
        return _DEFAULT_DPI, _DEFAULT_DPI
    return x, y
