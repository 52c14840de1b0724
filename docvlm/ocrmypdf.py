"""OCRmyPDF plugin: docvlm's text task as OCRmyPDF's OCR engine.

    ocrmypdf --plugin docvlm.ocrmypdf in.pdf out.pdf
    ocrmypdf --plugin docvlm.ocrmypdf --docvlm-checkpoint ./my-ocr-model in.pdf out.pdf
    ocrmypdf --plugin docvlm.ocrmypdf --docvlm-max-new-tokens 256 in.pdf out.pdf  # CPU

OCRmyPDF keeps doing what it does well (page rasterising, PDF/A, optimisation, page
rotation, sidecar text); docvlm reads each page image it is handed. The checkpoint is
``--docvlm-checkpoint`` (``docvlm_checkpoint=`` in ``ocrmypdf.ocr``), else
``DOCVLM_TEXT_CHECKPOINT``, else the public mix checkpoint; ``--docvlm-max-new-tokens``
bounds what a page may write (the text task's 2,048 tokens take minutes a page on a CPU).
The ``DOCVLM_*`` settings (device, dtype, engine...) are read once, when the options are
checked (a bad one stops OCRmyPDF before any page, naming the variable), and apply as
everywhere in docvlm. The model load and each page's read are logged (OCRmyPDF's log:
page number, seconds, lines, and a warning when a page was cut at the token budget).

The engine implements OCRmyPDF 17's ``generate_ocr`` (an ``OcrElement`` tree: a paragraph
per block of the shared reading order, its lines, and words whose boxes split the line's
box by character count, since the model gives line boxes), and the older
``generate_hocr`` and ``generate_pdf`` (sandwich renderer) from the same reading.
Loading the plugin blocks OCRmyPDF's Tesseract plugin (so Tesseract need not be
installed); ``--ocr-engine none`` still turns OCR off. Pages are read in threads of
this process (``use_threads`` is forced on): one model is loaded, not one per worker
process, and reads go through it one page at a time.

``--docvlm-engine MODULE:FUNCTION`` names another engine factory, called as
``FUNCTION(checkpoint, settings)`` (docvlm's ``EngineFactory``); tests use it to run a
``ScriptedEngine``.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ocrmypdf import hookimpl
from ocrmypdf.exceptions import BadArgsError
from ocrmypdf.hocrtransform import BoundingBox, OcrClass, OcrElement
from ocrmypdf.pluginspec import OcrEngine, OrientationConfidence
from PIL import Image
from pydantic import BaseModel, Field

from docvlm.errors import SettingsError
from docvlm.formats.hocr import page_hocr
from docvlm.formats.order import reading_order
from docvlm.formats.textlayer import draw_page, new_layer
from docvlm.reading.options import MAX_NEW_TOKENS_RANGE
from docvlm.reading.orient import MIN_CONFIDENCE, Orientation, measure_orientation
from docvlm.results import TextResult
from docvlm.settings import Settings
from docvlm.tasks import TASKS

if TYPE_CHECKING:
    import pluggy
    from ocrmypdf._options import OcrOptions

    from docvlm.client import DocVLM
    from docvlm.engines import EngineFactory
    from docvlm.results import Page
    from parsers import Box

__all__ = ["DocvlmOcrEngine", "DocvlmOptions"]

log = logging.getLogger(__name__)
_LOCK = threading.Lock()  # one model per process; reads go through it one at a time


class DocvlmOptions(BaseModel):
    """The plugin's options (``options.docvlm``)."""

    checkpoint: str | None = Field(default=None, description="text checkpoint (hub id or dir)")
    engine: str | None = Field(default=None, description="engine factory as module:function")
    max_new_tokens: int | None = Field(
        default=None,
        ge=MAX_NEW_TOKENS_RANGE[0],
        le=MAX_NEW_TOKENS_RANGE[1],
        description="tokens a page may write (default: the text task's budget)",
    )


@hookimpl
def initialize(plugin_manager: pluggy.PluginManager) -> None:
    plugin_manager.set_blocked("ocrmypdf.builtin_plugins.tesseract_ocr")


@hookimpl
def register_options() -> dict[str, type[BaseModel]]:
    # OCRmyPDF's own validation reads options.tesseract even when Tesseract's plugin is
    # blocked, so its option model stays registered (its hooks do not run).
    from ocrmypdf.builtin_plugins.tesseract_ocr import TesseractOptions

    return {"docvlm": DocvlmOptions, "tesseract": TesseractOptions}


@hookimpl
def add_options(parser: ArgumentParser) -> None:
    group = parser.add_argument_group("docvlm", "docvlm's text task as the OCR engine")
    group.add_argument(
        "--docvlm-checkpoint",
        dest="docvlm_checkpoint",
        metavar="CHECKPOINT",
        help="hub id or directory of the text checkpoint (default: DOCVLM_TEXT_CHECKPOINT, "
        "else the public PaliGemma 2 mix checkpoint)",
    )
    group.add_argument(
        "--docvlm-engine",
        dest="docvlm_engine",
        metavar="MODULE:FUNCTION",
        help="engine factory called as FUNCTION(checkpoint, settings) (default: docvlm's)",
    )
    group.add_argument(
        "--docvlm-max-new-tokens",
        dest="docvlm_max_new_tokens",
        metavar="N",
        type=int,
        help=f"tokens a page may write (default {TASKS['text'].max_new_tokens}); on a CPU "
        "each costs about half a second, so 256 bounds a page at about 2 minutes",
    )


@hookimpl
def check_options(options: OcrOptions) -> None:
    ours = cast(DocvlmOptions, options.docvlm)
    try:
        _settings()  # a bad DOCVLM_* variable is one line, before any page is read
    except SettingsError as error:
        raise BadArgsError(str(error)) from None
    if ours.engine is not None:
        _factory(ours.engine)  # a bad name is reported before any page is read
    if not options.use_threads:
        log.info("docvlm reads pages in threads (one model in memory): use_threads set")
        options.use_threads = True


@hookimpl
def get_ocr_engine(options: OcrOptions | None) -> OcrEngine | None:
    if options is not None and getattr(options, "ocr_engine", "auto") == "none":
        return None
    return DocvlmOcrEngine()


@functools.cache
def _factory(spec: str) -> EngineFactory:
    module, _, name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise BadArgsError(f"--docvlm-engine {spec!r}: cannot import it ({error})") from error
    if not callable(factory):
        raise BadArgsError(f"--docvlm-engine {spec!r} is not callable")
    return cast("EngineFactory", factory)


@functools.cache
def _settings() -> Settings:
    """The ``DOCVLM_*`` settings, read once for the whole OCRmyPDF run."""
    return Settings()


@functools.cache
def _client(checkpoint: str | None, engine: str | None) -> DocVLM:
    """The one client of the process, its text model loaded (and the load logged)."""
    from docvlm.client import DocVLM
    from docvlm.engines import load_engine

    factory = _factory(engine) if engine else load_engine
    client = DocVLM(_settings(), checkpoint=checkpoint, engine_factory=factory)
    log.info("docvlm: loading the text model %s", client.checkpoint_for("text"))
    started = time.perf_counter()
    client.models.engine("text")
    log.info("docvlm: model loaded in %.1f s", time.perf_counter() - started)
    return client


def _read(input_file: Path, options: OcrOptions) -> tuple[Page, float, tuple[int, int]]:
    """The page image read by the text task, its DPI (72 when it states none), its size;
    the read is logged (OCRmyPDF puts the page number before each line)."""
    ours = cast(DocvlmOptions, options.docvlm)
    budget = ours.max_new_tokens or TASKS["text"].max_new_tokens
    with Image.open(input_file) as image:
        image.load()
        dpi = float(image.info.get("dpi", (72.0, 72.0))[0]) or 72.0
        with _LOCK:
            client = _client(ours.checkpoint, ours.engine)
            log.info("docvlm: reading (up to %d tokens)", budget)
            started = time.perf_counter()
            document = client.convert(image, tasks=("text",), max_new_tokens=budget)
            seconds = time.perf_counter() - started
        size = image.size
    if document.error or not document.pages or document.pages[0].error:
        reason = document.error or (document.pages[0].error if document.pages else "no page")
        raise RuntimeError(f"docvlm could not read {input_file.name}: {reason}")
    page = document.pages[0]
    lines = sum(len(r.lines) for r in page.results if isinstance(r, TextResult))
    log.info("docvlm: read in %.1f s, %d line(s)", seconds, lines)
    if any(r.stop == "length" for r in page.results):
        log.warning(
            "docvlm: cut at the %d-token limit: the page's text may be incomplete "
            "(--docvlm-max-new-tokens)",
            budget,
        )
    return page, dpi, size


#: docvlm's confidence (0-1) in OCRmyPDF's scale: its --rotate-pages-threshold (default 14)
#: then turns the pages docvlm would turn (confidence 0.5 and above).
CONFIDENCE_SCALE = 28.0


def _measure(input_file: Path) -> Orientation:
    """The orientation and skew of a page image OCRmyPDF hands over."""
    with Image.open(input_file) as image:
        return measure_orientation(image.convert("RGB"))


def _box(box: Box) -> BoundingBox:
    return BoundingBox(left=box.x0, top=box.y0, right=box.x1, bottom=box.y1)


def _words(text: str, box: Box) -> list[OcrElement]:
    """Words of a line, their boxes the line's box split by character count."""
    words, start, step = [], 0, box.width / max(len(text), 1)
    for word in text.split(" "):
        if word:
            x0 = box.x0 + start * step
            edges = box.model_copy(update={"x0": x0, "x1": x0 + len(word) * step})
            words.append(OcrElement(ocr_class=OcrClass.WORD, bbox=_box(edges), text=word))
        start += len(word) + 1
    return words


def _tree(page: Page, dpi: float, number: int) -> OcrElement:
    paragraphs = []
    for block in reading_order(page):
        if block.kind not in ("text", "table", "molecule"):
            continue
        lines = [
            OcrElement(
                ocr_class=OcrClass.LINE, bbox=_box(line.box), children=_words(line.text, line.box)
            )
            for line in block.lines
            if line.text.strip()
        ]
        if lines:
            paragraphs.append(
                OcrElement(ocr_class=OcrClass.PARAGRAPH, bbox=_box(block.box), children=lines)
            )
    full = BoundingBox(left=0, top=0, right=page.width, bottom=page.height)
    return OcrElement(
        ocr_class=OcrClass.PAGE, bbox=full, dpi=dpi, page_number=number, children=paragraphs
    )


def _text(page: Page) -> str:
    return "\n\n".join(
        block.text for block in reading_order(page) if block.kind in ("text", "table")
    )


class DocvlmOcrEngine(OcrEngine):
    """OCRmyPDF's view of docvlm: each page image read by the ``text`` task."""

    @staticmethod
    def version() -> str:
        from docvlm import __version__

        return __version__

    @staticmethod
    def creator_tag(options: OcrOptions) -> str:
        return f"docvlm {DocvlmOcrEngine.version()}"

    def __str__(self) -> str:
        return f"docvlm {self.version()} (PaliGemma 2)"

    @staticmethod
    def languages(options: OcrOptions) -> set[str]:
        return set()  # the model takes no language hint: any -l is accepted

    @staticmethod
    def get_orientation(input_file: Path, options: OcrOptions) -> OrientationConfidence:
        """docvlm's measure (``docvlm.reading.orient``) in OCRmyPDF's terms: the angle
        the page is turned clockwise (Tesseract's "Orientation in degrees"), and the
        confidence scaled so that OCRmyPDF's default threshold (14) is docvlm's (0.5)."""
        found = _measure(input_file)
        return OrientationConfidence(
            angle=(360 - found.rotation) % 360, confidence=found.confidence * CONFIDENCE_SCALE
        )

    @staticmethod
    def get_deskew(input_file: Path, options: OcrOptions) -> float:
        """The degrees OCRmyPDF turns the page counter-clockwise to straighten it (0.0
        where docvlm's skew measure is unsure)."""
        found = _measure(input_file)
        return -found.skew if found.skew_confidence >= MIN_CONFIDENCE else 0.0

    @staticmethod
    def supports_generate_ocr() -> bool:
        return True

    @staticmethod
    def generate_ocr(
        input_file: Path, options: OcrOptions, page_number: int = 0
    ) -> tuple[OcrElement, str]:
        page, dpi, _size = _read(input_file, options)
        return _tree(page, dpi, page_number), _text(page)

    @staticmethod
    def generate_hocr(
        input_file: Path, output_hocr: Path, output_text: Path, options: OcrOptions
    ) -> None:
        page, _dpi, _size = _read(input_file, options)
        output_hocr.write_text(page_hocr(page, input_file.name), encoding="utf-8")
        output_text.write_text(_text(page), encoding="utf-8")

    @staticmethod
    def generate_pdf(
        input_file: Path, output_pdf: Path, output_text: Path, options: OcrOptions
    ) -> None:
        page, dpi, (pixels_x, pixels_y) = _read(input_file, options)
        layer = new_layer([page])
        width, height = pixels_x * 72 / dpi, pixels_y * 72 / dpi
        layer.add_page(format=(width, height))
        draw_page(layer, page, width, height)
        layer.output(str(output_pdf))
        output_text.write_text(_text(page), encoding="utf-8")
