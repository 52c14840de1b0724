"""An output folder to correct: one scanned page with a text block, a PubTabNet table, a
MolScribe depiction read with one atom missed, and a Humdrum score read as another
(shared by the editors' API and browser tests)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from PIL import Image, ImageDraw

from docvlm import Document, DocVLM, Page, Settings
from docvlm.archive.edits import frame_of
from docvlm.archive.runner import run_job
from docvlm.archive.sinks import FolderSink
from docvlm.archive.work import Options
from docvlm.reading.requests import Generation, Request, Stop
from docvlm.results import MoleculeResult, MusicResult, TableResult, TextResult
from docvlm.testing import ScriptedEngine
from parsers import Box, Detection, box_to_tokens

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


def page_canvas(corpus: Path) -> tuple[Image.Image, ImageDraw.ImageDraw, str]:
    """A 1200 x 1600 page: MolScribe's example depiction, its caption line and a PubTabNet
    table (its truth as the model writes it), to be drawn on and saved."""
    canvas = Image.new("RGB", (1200, 1600), "white")
    draw = ImageDraw.Draw(canvas)
    molecule = Image.open(corpus / "molecules/images_with_smiles/molscribe/example.png")
    canvas.paste(molecule.convert("RGB").resize((400, 300)), (60, 60))
    draw.text((520, 80), "Scheme 1. The product.", fill="black")
    table_image, table_raw = pubtabnet(corpus, "PMC5897438_004_00.png")
    canvas.paste(table_image.resize((502, 272)), (60, 420))
    return canvas, draw, table_raw


def editable_output(corpus: Path, folder: Path, formats: tuple[str, ...] = ("alto",)) -> Path:
    """``folder/out/``, as ``docvlm convert --out out/ --formats alto`` writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    page_png = folder / "page.png"
    canvas, draw, table_raw = page_canvas(corpus)
    draw.text((520, 100), LINES[1], fill="black")
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


#: The regions of ``converted_output``'s pages (page pixels) and what reads each.
REGIONS = (
    Detection(label="text", box=Box(x0=500, y0=60, x1=1140, y1=120)),
    Detection(label="table", box=Box(x0=60, y0=420, x1=562, y1=692)),
    Detection(label="molecule", box=Box(x0=60, y0=60, x1=460, y1=360)),
    Detection(label="music", box=Box(x0=60, y0=750, x1=1140, y1=1200)),
)
#: How sure the scripted model is of each task's answer (the queue's order follows).
SURE = {"ocr": 0.6, "table html": 0.8, "smiles": 0.35, "kern": 0.95}
TASKS = ("text", "table", "molecule", "music")


def _generation(text: str, probability: float, stop: Stop = "eos") -> Generation:
    """``text`` as tokens of four characters and an end-of-sequence token, each written
    with ``probability``."""
    ends = (*range(4, len(text), 4), len(text), len(text))
    return Generation(
        text=text,
        token_ids=tuple(range(len(ends))),
        logprobs=(math.log(probability),) * len(ends),
        stop=stop,
        ends=ends,
    )


def scripted_model(corpus: Path) -> DocVLM:
    """A client whose engine answers each region as ``editable_output``'s page holds it:
    the lines, the PubTabNet table, the SMILES with the fluorine missed (cut at the token
    limit) and the other minuet."""
    text_box = REGIONS[0].box
    frame = frame_of(text_box)
    side = frame.x1 - frame.x0
    tops = (80, 100)

    def line(top: int, text: str) -> str:
        box = Box(x0=520, y0=top, x1=900, y1=top + 16).shift(-frame.x0, -frame.y0)
        return box_to_tokens(box, side, side) + text

    answers = {
        "ocr": "".join(line(top, text) for top, text in zip(tops, LINES, strict=True)),
        "table html": pubtabnet(corpus, "PMC5897438_004_00.png")[1],
        "smiles": MISREAD,
        "kern": (corpus / OTHER_KERN).read_text(),
    }

    def respond(request: Request) -> Generation:
        stop: Stop = "length" if request.prompt == "smiles" else "eos"
        return _generation(answers[request.prompt], SURE[request.prompt], stop)

    engine = ScriptedEngine(respond, checkpoint="scripted")
    return DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="scripted")


def converted_output(
    corpus: Path, folder: Path, formats: tuple[str, ...] = (), *, copies: int = 2, out: str = "out/"
) -> Path:
    """``folder/out/`` (or ``out``: ``x.jsonl``), as ``docvlm convert --redo`` writes it
    with ``--formats`` from ``copies`` scans of ``editable_output``'s page (each with its
    number written on it, ``folder/scans/page-N.png``) read by ``scripted_model``; call it
    again for the same conversion run again."""
    scans = folder / "scans"
    scans.mkdir(parents=True, exist_ok=True)
    editable_output(corpus, folder / "drawn", formats=())
    page = Image.open(folder / "drawn" / "page.png")
    for number in range(1, copies + 1):
        copy = page.copy()
        draw = ImageDraw.Draw(copy)
        for staff in range(5):  # ink where the score is, so its region is read
            draw.line((80, 800 + 12 * staff, 1120, 800 + 12 * staff), fill="black", width=2)
        draw.text((1100, 1560), str(number), fill="black")
        copy.save(scans / f"page-{number}.png")
    options = Options(tasks=TASKS, regions={1: REGIONS}, formats=formats, orient=False)
    with scripted_model(corpus) as client:
        run_job(client, sorted(scans.glob("*.png")), options, f"{folder}/{out}", redo=True)
    return folder / out
