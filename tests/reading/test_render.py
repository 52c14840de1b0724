from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from docvlm import CorruptInputError, PageRangeError, PasswordRequiredError, UnsupportedInputError
from docvlm.reading.render import load_pages, parse_pages, sniff, to_rgb


def test_parse_pages() -> None:
    assert parse_pages(None, 3, source="x") == [1, 2, 3]
    assert parse_pages("1-2, 3", 5, source="x") == [1, 2, 3]
    assert parse_pages("4-", 5, source="x") == [4, 5]
    assert parse_pages([2, 2, 1], 5, source="x") == [2, 1]
    with pytest.raises(PageRangeError, match="x: page 0 is out of range"):
        parse_pages("0", 5, source="x")
    with pytest.raises(PageRangeError, match="bad page range"):
        parse_pages("a-b", 5, source="x")


def test_pdf_pages_render_lazily(make_pdf: Callable[..., Path]) -> None:
    pages = list(load_pages(make_pdf(3), pages="2-3", dpi=72))
    assert [p.number for p in pages] == [2, 3]
    width, height = pages[0].image.size
    assert width == 612 and abs(height - 792) <= 1 and pages[0].image.mode == "RGB"


def test_backends_agree_on_page_size(make_pdf: Callable[..., Path]) -> None:
    pytest.importorskip("pdf2image")
    import shutil

    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils is not installed")
    pdf = make_pdf(2)
    a = [p.image.size for p in load_pages(pdf, dpi=100)]
    b = [p.image.size for p in load_pages(pdf, dpi=100, backend="pdf2image")]
    assert all(abs(x[0] - y[0]) <= 1 and abs(x[1] - y[1]) <= 1 for x, y in zip(a, b, strict=True))


def test_type_is_sniffed_from_content(corpus: Path) -> None:
    folder = corpus / "pdfs/not_pdf"
    for path in sorted(folder.iterdir()):
        head = path.read_bytes()[:2048]
        if sniff(head) == "image":
            assert list(load_pages(path))
        else:
            with pytest.raises(UnsupportedInputError) as info:
                list(load_pages(path))
            assert path.name in str(info.value)


def test_encrypted_pdfs_need_a_password(corpus: Path) -> None:
    folder = corpus / "pdfs/encrypted"
    pdfs = sorted(folder.glob("*.pdf"))
    assert pdfs
    refused = 0
    for pdf in pdfs:
        try:
            list(load_pages(pdf, pages="1", dpi=30))
        except PasswordRequiredError as error:
            assert "password" in str(error) and pdf.name in str(error)
            refused += 1
    assert refused > 0


def test_corrupt_files_give_typed_errors(corpus: Path) -> None:
    for path in sorted((corpus / "pdfs/corrupt").iterdir()):
        try:
            pages = list(load_pages(path, dpi=30))
        except (CorruptInputError, UnsupportedInputError) as error:
            assert path.name in str(error)
        else:
            assert all(p.image.mode == "RGB" for p in pages)


def test_images_become_rgb(corpus: Path) -> None:
    folder = corpus / "pdfs/images"
    multipage = list(load_pages(folder / "pillow_multipage.tiff"))
    assert len(multipage) >= 2
    rotated = next(load_pages(folder / "pillow_hopper_orientation_6.jpg")).image
    with Image.open(folder / "pillow_hopper_orientation_6.jpg") as raw:
        assert rotated.size == (raw.height, raw.width)  # EXIF orientation 6: a quarter turn
    sixteen = next(load_pages(folder / "pillow_hopper_16bit.pgm")).image
    with Image.open(folder / "pillow_hopper_16bit.pgm") as raw:
        high = raw.getextrema()[1]
    assert sixteen.mode == "RGB"
    # scaled by the real maximum, not clipped at 255
    assert high > 255 and sixteen.convert("L").getextrema()[1] == 255
    alpha = to_rgb(Image.new("RGBA", (4, 4), (0, 0, 0, 0)))
    assert alpha.getpixel((0, 0)) == (255, 255, 255)
