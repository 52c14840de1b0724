"""The stages of the Ray Data pipeline, as plain functions over batches of documents.

Each row of the dataset is one document in flight (``Doc``, pickled in the ``doc``
column): its bytes, then its rendered pages and requests, then the engine's outputs, then
its ``Document``. The stages reuse the local runner's functions (``docvlm.archive.pipeline``:
``render_work``, ``generate_plans``, ``finish_plan``; ``docvlm.archive.records``) so both runners
write the same records. A document that cannot be read becomes a failed Document; nothing
here raises for bad input.
"""

from __future__ import annotations

import atexit
import io
import pickle
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from docvlm.archive.output import Output, is_uri
from docvlm.archive.pipeline import (
    Finished,
    Options,
    Plan,
    Work,
    finish_plan,
    generate_plans,
    read_layout,
    render_work,
)
from docvlm.archive.records import build_document, content_hash
from docvlm.distributed.store import Parts, read_uri
from docvlm.document import Document
from docvlm.engines import Engine, EngineFactory, Generation, Request
from docvlm.engines.pool import ModelPool
from docvlm.reading.pdf import InProcessPdf, PdfReader, RenderWorker
from docvlm.reading.sources import expand_sources
from docvlm.results import Page
from docvlm.settings import Settings

__all__ = ["Doc", "Generate", "Shape", "Shapes", "on_batches", "parse", "read", "render", "write"]

Kind = Literal["read", "failed", "skip"]


@dataclass
class Doc:
    """One document in flight through the stages."""

    name: str
    path: str | None = None  # a file to read (local path or URI)
    data: bytes | None = None  # its bytes (an archive member comes as bytes)
    sha256: str | None = None
    kind: Kind = "read"
    error: str | None = None  # why it failed, or the error that stopped its pages
    status: str | None = None  # skip: the status recorded by the earlier run
    plans: list[Plan] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)  # pages finished without the engine
    outputs: list[list[Generation | str]] = field(default_factory=list)
    engine_seconds: float = 0.0
    document: Document | None = None


def pack(docs: list[Doc]) -> Any:
    import pyarrow as pa

    values = [pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL) for doc in docs]
    return pa.table({"doc": pa.array(values, type=pa.large_binary())})


def unpack(batch: Any) -> list[Doc]:
    return [pickle.loads(value) for value in batch.column("doc").to_pylist()]


@dataclass(frozen=True)
class Shape:
    """What render tasks need of an engine: its checkpoint and input size (no model)."""

    checkpoint: str
    resolution: int

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        raise RuntimeError("render tasks do not generate")  # pragma: no cover


@dataclass(frozen=True)
class Shapes:
    """An engine factory of ``Shape``s, by checkpoint reference (picklable)."""

    shapes: Mapping[str, Shape]

    def __call__(self, checkpoint: str, settings: Settings) -> Engine:
        return self.shapes[checkpoint]


# --- read: bytes and content hash; what the destination holds is skipped ---------------


def _expanded(doc: Doc, settings: Settings) -> list[Doc]:
    """A file from a URI: its bytes, or an archive's members (opened from a local copy
    the way the local runner opens archives)."""
    assert doc.path is not None
    data = read_uri(doc.path)
    if not data.startswith((b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ")) and (
        data[257:262] != b"ustar"
    ):
        return [Doc(doc.name, data=data)]
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / (Path(doc.path).name or "archive")
        local.write_bytes(data)
        found = []
        for item in expand_sources([local], settings.limits()):
            name = doc.name + item.name[len(str(local)) :]
            if item.source is None:
                error = item.error.reason if item.error else "cannot be read"
                found.append(Doc(name, kind="failed", error=error))
            elif isinstance(item.source, bytes):
                found.append(Doc(name, data=item.source))
            else:
                found.append(Doc(name, data=data))
        return found


def read(
    docs: list[Doc], written: Mapping[str, tuple[str | None, str]], settings: Settings
) -> list[Doc]:
    """Each listed document with its bytes and hash, or marked ``skip`` when the
    destination already holds its record (same name, same bytes) or ``failed``."""
    done: list[Doc] = []
    for doc in docs:
        if doc.kind != "read":
            done.append(doc)
            continue
        try:
            found = _expanded(doc, settings) if doc.path and is_uri(doc.path) else [doc]
        except OSError as error:
            done.append(Doc(doc.name, kind="failed", error=f"cannot read ({error})"))
            continue
        for item in found:
            if item.kind == "read" and item.data is None:
                try:
                    item.data = Path(item.path or item.name).read_bytes()
                except OSError as error:
                    item.kind, item.error = "failed", f"cannot read ({error})"
            if item.data is not None:
                item.sha256 = content_hash(item.data)
                recorded = written.get(item.name)
                if recorded is not None and recorded[0] == item.sha256:
                    item.kind, item.status, item.data = "skip", recorded[1], None
            done.append(item)
    return done


# --- render: pages, crops, requests (CPU tasks) ----------------------------------------


_READERS: dict[float, RenderWorker] = {}


def _reader(timeout: float | None) -> PdfReader:
    """This worker process's render worker, started once and kept for its next tasks
    (Ray reuses its worker processes; a crashed render worker restarts itself)."""
    if timeout is None:
        return InProcessPdf()
    if timeout not in _READERS:
        _READERS[timeout] = RenderWorker(timeout)
        atexit.register(_READERS[timeout].shutdown)
    return _READERS[timeout]


def render(
    docs: list[Doc], options: Options, settings: Settings, checkpoint: str | None, shapes: Shapes
) -> list[Doc]:
    """Each document's pages rendered and planned; a document that cannot be rendered
    keeps the error that stopped it (its pages so far are kept). No model is loaded: the
    crops are cut at the sizes in ``shapes``."""
    models = ModelPool(settings, checkpoint=checkpoint, engine_factory=shapes)
    reader = _reader(settings.render_timeout)
    for doc in docs:
        if doc.kind != "read":
            continue
        source = io.BytesIO(doc.data or b"")
        source.name = doc.name
        work = Work(doc.name, source, doc.sha256)
        try:
            for item in render_work(work, reader, options, models):
                _keep(doc, item)
        except Exception as error:  # a renderer bug must not fail the job
            doc.error = f"rendering failed ({type(error).__name__}: {error})"
        for plan in doc.plans:
            plan.work = Work(doc.name, None, doc.sha256)  # the bytes stay behind
        doc.data = None
    return docs


def _keep(doc: Doc, item: Plan | Finished) -> None:
    if isinstance(item, Plan):
        doc.plans.append(item)
    elif item.page is not None:
        doc.pages.append(item.page)
    elif item.end:
        doc.error = item.error


# --- generate: one loaded model per actor ----------------------------------------------


class Generate:
    """A Ray Data actor: loads the models once, then reads every request of a batch of
    documents in one call per model (the engine batches them itself)."""

    def __init__(
        self,
        settings: Settings,
        checkpoint: str | None,
        factory: EngineFactory,
        options: Options,
        retries: int,
    ) -> None:
        self.models = ModelPool(settings, checkpoint=checkpoint, engine_factory=factory)
        self.options = options
        self.retries = retries  # models load on the first batch: a rerun may need none

    def __call__(self, batch: Any) -> Any:
        docs = unpack(batch)
        plans = [plan for doc in docs for plan in doc.plans]
        if self.options.layout or self.options.regions is not None:
            self._layout(docs)
            return pack(docs)
        outputs, seconds = generate_plans(plans, self.models.engine, self.retries)
        found = iter(outputs)
        for doc in docs:
            doc.outputs = [next(found) for _ in doc.plans]
            for plan in doc.plans:
                plan.requests = []  # the crops are done with: keep them out of the store
            if doc.plans:
                doc.engine_seconds = seconds * len(doc.plans) / len(plans)
        return pack(docs)

    def _layout(self, docs: list[Doc]) -> None:
        """Layout mode needs the model between the stages: regions are found, cut and
        read here, pages come out parsed."""
        for doc in docs:
            pages = [plan.page for plan in doc.plans if plan.page is not None]
            started = time.perf_counter()
            doc.pages += read_layout(self.models, pages, self.options)
            doc.engine_seconds = time.perf_counter() - started
            doc.plans = []


# --- parse: results and Documents (CPU tasks) ------------------------------------------


def parse(docs: list[Doc]) -> list[Doc]:
    """Each document's results parsed and its Document built, as the local runner does."""
    for doc in docs:
        if doc.kind == "failed":
            doc.document = build_document(doc.name, [], error=doc.error)
        elif doc.kind == "read":
            pages = doc.pages + [
                finish_plan(plan, outputs)
                for plan, outputs in zip(doc.plans, doc.outputs, strict=True)
            ]
            pages.sort(key=lambda page: page.number)
            doc.document = build_document(doc.name, pages, sha256=doc.sha256, error=doc.error)
        doc.plans, doc.outputs = [], []
    return docs


# --- write: one part per batch ---------------------------------------------------------


def write(docs: list[Doc], output: Output) -> dict[str, Any]:
    """The batch's Documents as one part in ``output``; what it held, for the summary."""
    documents = [doc.document for doc in docs if doc.document is not None]
    if documents:
        Parts(output).write(documents)
    statuses = [d.status for d in documents]
    return {
        "success": [statuses.count("success")],
        "partial": [statuses.count("partial")],
        "failure": [statuses.count("failure")],
        "skipped": [sum(doc.kind == "skip" for doc in docs)],
        "skipped_bad": [sum(doc.kind == "skip" and doc.status != "success" for doc in docs)],
        "pages_done": [sum(p.status != "error" for d in documents for p in d.pages)],
        "pages_failed": [sum(p.status == "error" for d in documents for p in d.pages)],
        "engine_seconds": [sum(doc.engine_seconds for doc in docs)],
    }


def on_batches(step: Callable[..., list[Doc]], **kwargs: Any) -> Callable[[Any], Any]:
    """``step`` as a Ray Data batch function over the pickled ``doc`` column."""

    def run(batch: Any) -> Any:
        return pack(step(unpack(batch), **kwargs))

    run.__name__ = run.__qualname__ = step.__name__  # how Ray names the stage in its logs
    return run
