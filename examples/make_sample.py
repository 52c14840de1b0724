"""Write examples/sample.pdf: a two-page 'scanned' report (text and a ruled table).

What it does: draws two pages with Pillow and saves them as an image-only PDF, the way a
scanner does, so the sample has no text layer to cheat with.
Requirements: Pillow (installed with docvlm).
Run: python examples/make_sample.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).parent


def _page(title: str, rows: list[tuple[str, str, str]]) -> Image.Image:
    image = Image.new("RGB", (1275, 1650), "white")  # US letter at 150 dpi
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=28)
    small = ImageFont.load_default(size=22)
    draw.text((110, 110), title, fill="black", font=font)
    body = [
        "Samples were measured three times at room temperature.",
        "The table gives the mean yield and its standard deviation.",
        "Values below the detection limit are marked n.d.",
    ]
    for i, line in enumerate(body):
        draw.text((110, 190 + i * 40), line, fill="black", font=small)
    top = 380
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            x0, y0 = 110 + c * 330, top + r * 56
            draw.rectangle((x0, y0, x0 + 330, y0 + 56), outline="black", width=2)
            draw.text((x0 + 16, y0 + 14), value, fill="black", font=small)
    return image


def main() -> None:
    first = _page(
        "1. Yield of the coupling step",
        [
            ("Catalyst", "Yield (%)", "SD"),
            ("Pd(OAc)2", "82", "2.1"),
            ("PdCl2", "64", "3.4"),
            ("none", "n.d.", "-"),
        ],
    )
    second = _page(
        "2. Effect of temperature",
        [
            ("T (C)", "Yield (%)", "SD"),
            ("25", "41", "1.9"),
            ("60", "77", "2.6"),
            ("90", "80", "2.2"),
        ],
    )
    out = HERE / "sample.pdf"
    first.save(out, "PDF", resolution=150.0, save_all=True, append_images=[second])
    print(out)


if __name__ == "__main__":
    main()
