"""Scale-out on Ray Data: the archive runner's conversion as one Ray Data pipeline.

::

    list      the driver: folders walked and archives opened as the local runner does,
              URIs (s3://, gs://, ...) listed with pyarrow.fs
    read      CPU tasks: bytes and SHA-256; what DEST already holds is skipped
    render    CPU tasks: pages rendered, crops cut, requests written
    generate  an actor pool: one loaded model per actor (GPUs per actor, pool size)
    parse     CPU tasks: results parsed, Documents built
    write     CPU tasks: one part file per batch of Documents, moved into DEST whole

The records are the local runner's (``docvlm schema document`` for JSON Lines, ``docvlm
schema row`` for Parquet). DEST is a folder, a local path or a URI, holding the parts and
the job key (``Output.parts``, ``docvlm.distributed.store``); a local DEST is locked for the
job as the local runner locks it (``Output.lock``); a rerun into it converts only what it does not
hold. Ray Data retries a task whose worker died and restarts a killed actor, retrying its
calls (its defaults: without limit); a part, once in DEST, is never rewritten, so a killed
actor loses no record written before. A bad file is a failed record, never a failed job;
the engine's own failures are retried (``Options.retries``) and then recorded per page.

``ray`` is the optional extra ``docvlm[ray]``; it is imported here only when a job runs.
May import: the archive machinery, the reading path, engines and parsers; never the
client. Only its entry point (``docvlm convert --ray``) imports it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from docvlm.archive.output import Output, PartFormat, is_uri
from docvlm.archive.pipeline import Options
from docvlm.archive.records import JobKey
from docvlm.archive.runner import Run, Summary
from docvlm.distributed.stages import (
    Doc,
    Generate,
    Shape,
    Shapes,
    on_batches,
    pack,
    parse,
    read,
    render,
    write,
)
from docvlm.distributed.store import Parts, list_uri
from docvlm.engines import Engine, EngineFactory, load_engine
from docvlm.engines.pool import ModelPool
from docvlm.errors import CheckpointUnavailableError, ExitCode, MissingDependencyError
from docvlm.reading.sources import expand_sources
from docvlm.settings import Settings

__all__ = ["ScaleOptions", "convert_dataset", "import_ray"]


class ScaleOptions(BaseModel):
    """How the pipeline is spread over the cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actors: int = Field(default=1, ge=1, description="generation actors, one model each")
    gpus_per_actor: float = Field(
        default=0.0, ge=0, description="GPUs each actor holds (0 on CPU; 1 = a GPU each)"
    )
    cpus_per_actor: float = Field(default=1.0, gt=0, description="CPUs each actor holds")
    documents_per_call: int = Field(
        default=4, ge=1, description="documents whose requests go to the engine together"
    )
    render_memory_mb: int = Field(
        default=512,
        ge=1,
        description="memory reserved per read/render task (keeps rendering in tasks of its "
        "own, not fused into the actors)",
    )
    documents_per_part: int = Field(
        default=64, ge=1, description="documents per part file (and per write task)"
    )


def import_ray() -> Any:
    """The ``ray`` module, or one clear error naming the extra."""
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise MissingDependencyError(
            "running on Ray needs Ray Data: pip install 'docvlm[ray]'"
        ) from error
    return ray


def _described(checkpoint: str, settings: Settings) -> Engine:
    """The shape of a checkpoint from its config (no weights loaded on the driver)."""
    from docvlm.engines.checkpoints import is_hub_id

    if is_hub_id(checkpoint):
        from huggingface_hub import hf_hub_download

        config = Path(
            hf_hub_download(
                checkpoint,
                "config.json",
                cache_dir=settings.cache_dir,
                local_files_only=settings.offline,
            )
        )
    else:
        config = Path(checkpoint).expanduser() / "config.json"
    try:
        size = json.loads(config.read_text())["vision_config"]["image_size"]
    except (OSError, KeyError, ValueError) as error:
        raise CheckpointUnavailableError(
            f"checkpoint {checkpoint!r}: cannot read its input size from config.json ({error})"
        ) from None
    return Shape(checkpoint, int(size))


def _listed(
    sources: Sequence[str | Path], options: Options, settings: Settings
) -> tuple[list[Doc], int]:
    """The documents behind ``sources`` (named as the local runner names them) and how
    many files were left out."""
    ignored = 0

    def skip(*_: str) -> None:
        nonlocal ignored
        ignored += 1

    docs: list[Doc] = []
    local = [s for s in sources if not is_uri(s)]
    for item in expand_sources(
        local, settings.limits(), include=options.include, exclude=options.exclude, on_skip=skip
    ):
        if item.source is None:
            error = item.error.reason if item.error else "cannot be read"
            docs.append(Doc(item.name, kind="failed", error=error))
        elif isinstance(item.source, bytes):
            docs.append(Doc(item.name, data=item.source))
        else:
            docs.append(Doc(item.name, path=str(item.source)))
    for uri in (str(s) for s in sources if is_uri(s)):
        names = list_uri(uri, options.include, options.exclude, skip)
        docs += [Doc(name, path=name) for name in names]
    return docs, ignored


def _job(
    options: Options, settings: Settings, checkpoint: str | None, factory: EngineFactory
) -> tuple[JobKey, Shapes]:
    """The job key (as the local runner computes it) and each checkpoint's shape."""
    probe = ModelPool(
        settings,
        checkpoint=checkpoint,
        engine_factory=_described if factory is load_engine else factory,
    )
    key = Run(probe, options).job_key()
    shapes = {}
    for task in dict.fromkeys(entry.task for entry in key.reads):
        engine = probe.engine(task)  # type: ignore[arg-type]
        reference = probe.checkpoint_for(task)  # type: ignore[arg-type]
        shapes[reference] = Shape(engine.checkpoint, engine.resolution)
    return key, Shapes(shapes)


def _connect(ray: Any, address: str | None) -> bool:
    """Join (or start) Ray; True when this call started it (and so stops it)."""
    if ray.is_initialized():
        return False
    if address == "local":
        ray.init(include_dashboard=False)
    else:
        ray.init(address=address)
    return True


def convert_dataset(
    sources: Sequence[str | Path],
    dest: str | Path | Output,
    options: Options | None = None,
    *,
    scale: ScaleOptions | None = None,
    settings: Settings | None = None,
    checkpoint: str | None = None,
    engine_factory: EngineFactory = load_engine,
    output_format: PartFormat | None = None,
    redo: bool = False,
    address: str | None = None,
) -> Summary:
    """Convert ``sources`` (files, folders, archives, URIs) into ``dest`` on Ray Data.

    ``dest`` is a folder (local or a URI) of Parquet parts, or JSON Lines parts when it is
    named ``*.jsonl`` or ``output_format="jsonl"`` (``Output.parts``; or an ``Output`` of
    either kind). A local ``dest`` is locked as the local runner locks it, for the whole
    job (``DestinationBusyError`` while another run writes it). ``address``: None joins
    the Ray this process already runs or ``ray.init()`` finds, ``"local"`` starts one here,
    anything else is a cluster address (``ray://host:10001``). Returns the local runner's
    summary.
    """
    options = options or Options(tasks=("text",))
    if options.formats:
        raise ValueError("formats (an output folder's files) are written by the local runner only")
    ray = import_ray()
    scale = scale or ScaleOptions()
    settings = settings or Settings()
    if "ask" in options.tasks and not options.question:
        raise ValueError("the 'ask' task needs a question")
    output = dest if isinstance(dest, Output) else Output.parts(dest, output_format)
    parts = Parts(output)
    with output.lock():  # held for the job: a local run (or another Ray job) here is refused
        parts.check_not_local_output()  # before the model is described (prepare checks too)
        key, shapes = _job(options, settings, checkpoint, engine_factory)
        parts.prepare(key.fingerprint(), key.model_dump_json(), redo)
        written = {} if redo else parts.written()
        docs, ignored = _listed(sources, options, settings)
        started_here = _connect(ray, address)
        started = time.perf_counter()
        try:
            totals = _run(
                ray,
                docs,
                parts,
                written,
                options,
                scale,
                settings,
                checkpoint,
                engine_factory,
                shapes,
            )
        finally:
            if started_here:
                ray.shutdown()
    return _summary(totals, ignored, time.perf_counter() - started, scale.actors)


def _run(
    ray: Any,
    docs: list[Doc],
    parts: Parts,
    written: dict[str, tuple[str | None, str]],
    options: Options,
    scale: ScaleOptions,
    settings: Settings,
    checkpoint: str | None,
    factory: EngineFactory,
    shapes: Shapes,
) -> dict[str, float]:
    """Build the pipeline and run it; the totals of what the write tasks reported."""
    totals: dict[str, float] = {}
    if not docs:
        return totals
    memory = scale.render_memory_mb * 2**20
    listed = ray.data.from_items(
        [{"doc": row} for row in pack(docs).column("doc").to_pylist()],
        override_num_blocks=min(len(docs), 1000),
    )
    pipeline = (
        listed.map_batches(
            on_batches(read, written=written, settings=settings),
            batch_format="pyarrow",
            batch_size=1,
            memory=memory,
        )
        .map_batches(
            on_batches(
                render, options=options, settings=settings, checkpoint=checkpoint, shapes=shapes
            ),
            batch_format="pyarrow",
            batch_size=1,
            memory=memory,
        )
        .map_batches(
            Generate,
            fn_constructor_kwargs={
                "settings": settings,
                "checkpoint": checkpoint,
                "factory": factory,
                "options": options,
                "retries": options.retries,
            },
            compute=ray.data.ActorPoolStrategy(size=scale.actors),
            batch_size=scale.documents_per_call,
            batch_format="pyarrow",
            num_gpus=scale.gpus_per_actor,
            num_cpus=scale.cpus_per_actor,
        )
        .map_batches(on_batches(parse), batch_format="pyarrow", batch_size=1)
        .map_batches(
            _writer(parts.output),
            batch_format="pyarrow",
            batch_size=scale.documents_per_part,
        )
    )
    for row in pipeline.iter_rows():
        for name, value in row.items():
            totals[name] = totals.get(name, 0) + value
    return totals


def _writer(output: Output) -> Any:
    def run(batch: Any) -> Any:
        import pyarrow as pa

        from docvlm.distributed.stages import unpack

        return pa.table(write(unpack(batch), output))

    run.__name__ = run.__qualname__ = "write"
    return run


def _summary(totals: dict[str, float], ignored: int, seconds: float, actors: int) -> Summary:
    def count(name: str) -> int:
        return int(totals.get(name, 0))

    pages = count("pages_done") + count("pages_failed")
    bad = count("partial") + count("failure") + count("skipped_bad")
    engine = totals.get("engine_seconds", 0.0) / actors
    return Summary(
        files_done=count("success"),
        files_partial=count("partial"),
        files_failed=count("failure"),
        files_skipped=count("skipped"),
        files_ignored=ignored,
        pages_done=count("pages_done"),
        pages_failed=count("pages_failed"),
        pages_reused=0,
        seconds=round(seconds, 3),
        pages_per_second=round(pages / seconds, 3) if seconds > 0 else 0.0,
        engine_busy=round(min(1.0, engine / seconds), 3) if seconds > 0 else 0.0,
        stopped=False,
        exit_code=ExitCode.FAILED if bad else ExitCode.OK,
    )


def iter_records(dest: str | Path, output_format: PartFormat | None = None) -> Iterator[str]:
    """The part files of ``dest`` (paths inside its filesystem), for tools and tests."""
    yield from Parts(Output.parts(dest, output_format)).parts()
