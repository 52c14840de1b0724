"""An output folder to correct: one scanned page with a text block, a PubTabNet table, a
MolScribe depiction read with one atom missed, and a Humdrum score read as another
(shared by the editors' API and browser tests)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from PIL import Image, ImageDraw

from docvlm import Document, Page
from docvlm.archive.sinks import FolderSink
from docvlm.results import MoleculeResult, MusicResult, TableResult, TextResult
from parsers import Box

SMILES = "Fc1ccc(-c2cc(-c3ccccc3)n(-c3ccccc3)c2)cc1"  # MolScribe's example.png
MISREAD = "c1ccc(-c2cc(-c3ccccc3)n(-c3ccccc3)c2)cc1"  # the fluorine missed
LINES = ("Scheme 1. The prodnct.", "Yields after two steps.")
KERN = "music/kern/polish_holland_erste-menuet.krn"  # what the page shows
OTHER_KERN = "music/kern/polish_holland_zweite-menuet.krn"  # what the model read


def pubtabnet(corpus: Path, name: str) -> tuple[Image.Image, str]:
    """A PubTabNet crop and its ground-truth HTML (structure tokens with cell tokens)."""
    folder = corpus / "tables/pubtabnet/examples"
    for line in (folder / "PubTabNet_Examples.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["filename"] == name:
            cells = iter(record["html"]["cells"])
            parts = [
                "".join(next(cells)["tokens"]) + token if token == "</td>" else token
                for token in record["html"]["structure"]["tokens"]
            ]
            return Image.open(folder / name).convert("RGB"), f"<table>{''.join(parts)}</table>"
    raise LookupError(name)


def editable_output(corpus: Path, folder: Path, formats: tuple[str, ...] = ("alto",)) -> Path:
    """``folder/out/``, as ``docvlm convert --out out/ --formats alto`` writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    page_png = folder / "page.png"
    canvas = Image.new("RGB", (1200, 1600), "white")
    draw = ImageDraw.Draw(canvas)
    molecule = Image.open(corpus / "molecules/images_with_smiles/molscribe/example.png")
    canvas.paste(molecule.convert("RGB").resize((400, 300)), (60, 60))
    draw.text((520, 80), "Scheme 1. The product.", fill="black")
    draw.text((520, 100), LINES[1], fill="black")
    table_image, table_raw = pubtabnet(corpus, "PMC5897438_004_00.png")
    canvas.paste(table_image.resize((502, 272)), (60, 420))
    canvas.save(page_png)
    common = {"source": str(page_png), "page": 1, "checkpoint": "prepared", "prompt": "p"}
    frame = Box(x0=0, y0=0, x1=1200, y1=1200)
    results = (
        TextResult.from_output(
            f"<loc0060><loc0440><loc0080><loc0900>{LINES[0]}"
            f"<loc0082><loc0440><loc0100><loc0900>{LINES[1]}",
            frame,
            box=Box(x0=500, y0=60, x1=1140, y1=120),
            **common,
        ),
        TableResult.from_output(table_raw, frame, box=Box(x0=60, y0=420, x1=562, y1=692), **common),
        MoleculeResult.from_output(MISREAD, frame, box=Box(x0=60, y0=60, x1=460, y1=360), **common),
        MusicResult.from_output(
            (corpus / OTHER_KERN).read_text(),
            frame,
            box=Box(x0=60, y0=750, x1=1140, y1=1200),
            **common,
        ),
    )
    page = Page(number=1, width=1200, height=1600, dpi=150, status="ok", results=results)
    document = Document(
        source=str(page_png),
        sha256=hashlib.sha256(page_png.read_bytes()).hexdigest(),
        status="success",
        pages=(page,),
    )
    out = folder / "out"
    with FolderSink(out, formats=formats) as sink:
        sink.write(document)
    return out


def record(out: Path) -> Document:
    (file,) = out.glob("*/document.json")
    return Document.model_validate_json(file.read_bytes())
