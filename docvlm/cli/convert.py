"""``docvlm convert`` (resumable archive runs), ``status``, ``inspect`` and ``schema``."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from docvlm.archive.manifest import Manifest
from docvlm.archive.output import Output
from docvlm.archive.summary import Observer
from docvlm.cli.common import (
    Checkpoint,
    DeviceOption,
    Dpi,
    EngineOption,
    Formats,
    JsonFlag,
    MaxNewTokens,
    Orient,
    Pages,
    Password,
    err,
    human,
    settings_for,
)
from docvlm.cli.local import convert_locally
from docvlm.document import Document, json_schema
from docvlm.errors import DocVLMError, ExitCode, SettingsError
from docvlm.reading.options import option_help
from docvlm.settings import Settings
from docvlm.tasks import TASKS, TaskName

__all__ = ["convert", "inspect", "schema", "status_command"]


Files = Annotated[
    list[Path], typer.Argument(help="PDF or image files, folders, zip or tar archives.")
]
TaskFlag = Annotated[
    Optional[list[str]],  # noqa: UP045 - typer reads the annotation at run time
    typer.Option(
        "--task", "-t", help=f"Task to run, repeatable: {', '.join(TASKS)} (default: text)."
    ),
]
Layout = Annotated[
    bool,
    typer.Option(
        "--layout",
        help="Find regions first (layout task) and read each with the task of its label "
        "(table, molecule, music, text; figure -> caption), in reading order.",
    ),
]
Question = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--question", "-q", help=option_help("question")),
]
Destination = Annotated[
    Optional[str],  # noqa: UP045 - a str: a trailing / (a folder) matters
    typer.Option(
        "--out",
        "-o",
        help="Where to write, resumably: x.jsonl, x.parquet, NAME.parquet/ (Parquet "
        "parts), DIR/ (files per document). Default: stdout.",
    ),
]
Redo = Annotated[
    bool,
    typer.Option(
        "--redo",
        help="Forget the manifest of --out and convert FILES again from scratch. The records "
        "of files not in this run: dropped from x.jsonl or x.parquet (the file starts over); "
        "in an output folder their document folders stay on disk but leave the manifest. "
        "Prints a warning when --out holds records; corrections are kept.",
    ),
]
RetryFailed = Annotated[
    bool,
    typer.Option(
        "--retry-failed",
        help="Convert again the files --out records as failed or partial (e.g. with "
        "--password now given); each new record replaces the old one.",
    ),
]
PasswordsFile = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--passwords",
        help='A JSON object of file name (or path as recorded) to password: {"a.pdf": "pw"}.',
    ),
]
Wait = Annotated[
    bool,
    typer.Option("--wait", help="If another run is writing --out, wait for it (else exit 4)."),
]
MaxErrorRate = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(
        "--max-error-rate",
        min=0.0,
        max=1.0,
        help="Stop (exit 3) as soon as more than this fraction of files failed (judged after 10).",
    ),
]
LogFormatFlag = Annotated[
    str,
    typer.Option(
        "--log-format", help="auto (a progress bar on a terminal, else JSON lines), rich, json."
    ),
]
Workers = Annotated[
    int, typer.Option("--workers", min=1, help="Render worker processes (default 2).")
]
Include = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--include", help="In folders, read only files matching this glob."),
]
Exclude = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--exclude", help="In folders, leave out files matching this glob."),
]
Ray = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help="Run on Ray Data at this address ('local' starts Ray here, 'auto' joins the "
        "running cluster); --out is a folder of parts (local path or URI such as s3://).",
    ),
]
Actors = Annotated[
    int, typer.Option("--actors", min=1, help="With --ray: model actors (default 1).")
]
GpusPerActor = Annotated[
    float, typer.Option("--gpus-per-actor", min=0, help="With --ray: GPUs per actor.")
]


def convert(
    files: Files,
    task: TaskFlag = None,
    layout: Layout = False,
    question: Question = None,
    checkpoint: Checkpoint = None,
    pages: Pages = None,
    password: Password = None,
    dpi: Dpi = None,
    max_new_tokens: MaxNewTokens = None,
    orient: Orient = True,
    device: DeviceOption = None,
    engine: EngineOption = None,
    as_json: JsonFlag = False,
    out: Destination = None,
    formats: Formats = None,
    redo: Redo = False,
    retry_failed: RetryFailed = False,
    passwords: PasswordsFile = None,
    wait: Wait = False,
    max_error_rate: MaxErrorRate = None,
    log_format: LogFormatFlag = "auto",
    workers: Workers = 2,
    include: Include = None,
    exclude: Exclude = None,
    ray: Ray = None,
    actors: Actors = 1,
    gpus_per_actor: GpusPerActor = 0.0,
) -> None:
    """Convert FILES: every page through the chosen tasks; bad files are reported, not fatal.

    Folders are read recursively (hidden files skipped), zip/tar archives member by member.
    With --out, each Document is written as it finishes, a manifest beside it records what
    is done, and the same command run again resumes. Exit status: 0 all converted, 1 some
    files failed (each reported with its cause), 3 stopped by --max-error-rate, 4 another
    run is writing --out, 5 the run stopped on an error such as a full disk (rerun resumes).
    """
    from docvlm.archive.pipeline import Options

    tasks = _tasks(task, question)
    observer = _observer(log_format)
    output = _destination(out, ray)
    chosen = _formats(formats, output, ray)
    settings = settings_for(device, engine)
    options = Options(
        tasks=tasks,
        pages=pages,
        password=password,
        dpi=dpi or settings.dpi,
        max_new_tokens=max_new_tokens,
        question=question,
        layout=layout,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        render_workers=workers,
        formats=chosen,
        orient=orient,
    )
    if ray is not None:  # docvlm.distributed: Ray loads only here
        from docvlm.distributed.command import convert_on_ray

        if retry_failed or wait or passwords or chosen:
            raise typer.BadParameter(
                "not with --ray", param_hint="--retry-failed/--wait/--passwords/--formats"
            )
        code = convert_on_ray(
            files,
            output,
            options,
            settings,
            checkpoint,
            ray,
            actors=actors,
            gpus_per_actor=gpus_per_actor,
            redo=redo,
            max_error_rate=max_error_rate,
            observer=observer,
        )
        raise typer.Exit(code)
    code = convert_locally(  # docvlm.cli.local: the run, its errors and exit codes
        files,
        output,
        options,
        settings,
        checkpoint,
        redo=redo,
        max_error_rate=max_error_rate,
        retry_failed=retry_failed,
        passwords=passwords,
        wait=wait,
        observer=observer,
        on_document=None if out else functools.partial(_to_stdout, as_json=as_json),
    )
    raise typer.Exit(code)


def _tasks(given: list[str] | None, question: str | None) -> list[TaskName]:
    """``--task`` as task names in the table's order (default text), checked."""
    names = given or ["text"]
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise typer.BadParameter(f"unknown task {unknown[0]!r}", param_hint="--task")
    tasks = [spec.name for name, spec in TASKS.items() if name in names]
    if "ask" in tasks and not question:
        raise typer.BadParameter("the ask task needs --question", param_hint="--task")
    return tasks


def _observer(log_format: str) -> Observer:
    """What shows the run: a progress bar or JSON lines (``--log-format``)."""
    from docvlm.archive.progress import observer_for

    if log_format not in ("auto", "rich", "json"):
        raise typer.BadParameter("use auto, rich or json", param_hint="--log-format")
    return observer_for(log_format, err)  # type: ignore[arg-type]


def _to_stdout(document: Document, *, as_json: bool) -> None:
    """A document without --out: JSON Lines, or the results for people."""
    text = document.model_dump_json() + "\n" if as_json else ""
    text = text or "".join(human(r) for p in document.pages for r in p.results)
    sys.stdout.write(text)
    sys.stdout.flush()


def inspect(
    paths: Annotated[list[Path], typer.Argument(help="Files, folders or zip/tar archives.")],
    password: Password = None,
    dpi: Dpi = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per file.")] = False,
    orient: Annotated[
        bool,
        typer.Option(
            "--orient",
            help="Render each page and measure its orientation and skew (rotation, skew, "
            "orientation_confidence: what convert would apply), without a model.",
        ),
    ] = False,
) -> None:
    """List each file's detected type and pages (with sizes), or the error that stops it.

    Folders are walked recursively (hidden files skipped) and archives expanded. Nothing
    is rendered (unless --orient), so it is quick to run over a whole archive first.
    """
    from docvlm.reading.inspection import inspect_sources

    settings = Settings()
    bad = 0
    for info in inspect_sources(
        paths,
        password=password,
        dpi=dpi or settings.dpi,
        limits=settings.limits(),
        orient=orient,
    ):
        bad += info.error is not None
        if as_json:
            sys.stdout.write(info.model_dump_json() + "\n")
        elif info.error:
            sys.stdout.write(f"{info.source}\t{info.type or '-'}\terror: {info.error}\n")
        else:
            sizes = ", ".join(
                f"{p.width}x{p.height}" + ("" if p.rotation is None else f" {p.rotation}°")
                for p in info.pages[:5]
            )
            more = f", ... ({len(info.pages)} pages)" if len(info.pages) > 5 else ""
            sys.stdout.write(
                f"{info.source}\t{info.type}\t{len(info.pages)} page(s): {sizes}{more}\n"
            )
    if bad:
        raise typer.Exit(ExitCode.FAILED)


def schema(
    kind: Annotated[
        str,
        typer.Argument(
            help="results (what read-* prints), document (a JSON Lines record, document.json), "
            "row (a Parquet row), review (what review --json prints) or correction (a line "
            "of docvlm correct's file)."
        ),
    ] = "results",
) -> None:
    """Print the JSON Schema of the results, of a converted Document, of a Parquet row, of
    docvlm review's list, or of a correction."""
    kinds = ("results", "document", "row", "review", "correction")
    if kind not in kinds:
        raise typer.BadParameter(f"use {', '.join(kinds[:-1])} or {kinds[-1]}", param_hint="KIND")
    if kind == "review":
        from docvlm.archive.review import review_schema

        print(json.dumps(review_schema(), indent=2))
        return
    if kind == "correction":
        from docvlm.archive.edits import Correction

        print(json.dumps(Correction.model_json_schema(), indent=2))
        return
    if kind == "row":
        from docvlm.archive.parquet import row_json_schema

        print(json.dumps(row_json_schema(), indent=2))
        return
    print(json.dumps(json_schema("document" if kind == "document" else "results"), indent=2))


def status_command(
    destination: Annotated[
        str, typer.Argument(help="The --out of a convert run (x.jsonl, x.parquet, DIR/).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print files done / partial / failed / pending and pages done / failed for DEST."""
    try:
        path = Output.parse(destination).manifest_file
    except ValueError as error:  # not a destination docvlm writes, a URI
        sys.stderr.write(f"error: {error}\n")
        raise typer.Exit(ExitCode.FAILED) from None
    if not path.exists():
        sys.stderr.write(f"error: {destination}: no manifest ({path} does not exist)\n")
        raise typer.Exit(ExitCode.FAILED)
    with Manifest(path) as manifest:
        counts = manifest.counts()
    if as_json:
        sys.stdout.write(json.dumps(counts.__dict__) + "\n")
        return
    sys.stdout.write(
        f"files: {counts.files_done} done, {counts.files_partial} partial, "
        f"{counts.files_failed} failed, {counts.files_pending} pending\n"
        f"pages: {counts.pages_done} done, {counts.pages_failed} failed\n"
    )


def _destination(out: str | None, ray: str | None) -> Output | None:
    """``--out``, parsed here, once: a destination docvlm cannot write is refused before
    anything runs; with ``--ray`` it names a folder of parts (``Output.parts``)."""
    if out is None:
        return None
    try:
        if ray is not None:
            return Output.parts(out)
        output = Output.parse(out)
        output.check_local()  # JSON Lines parts and URIs are the Ray runner's
        return output
    except SettingsError as error:  # and a folder asked for where a file of that name is
        sys.stderr.write(f"error: {error}\n")
        raise typer.Exit(ExitCode.USAGE) from None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--out") from None


def _formats(
    given: list[str] | None, output: Output | None, ray: str | None
) -> tuple[str, ...] | None:
    """``--formats`` as format names, refused unless --out is an output folder."""
    if ray is not None and given:
        raise typer.BadParameter(
            "not with --ray (the local runner writes them)", param_hint="--formats"
        )
    if not given:
        return None
    from docvlm.formats.files import parse_formats

    try:
        chosen = parse_formats(given)
    except (ValueError, DocVLMError) as error:
        raise typer.BadParameter(str(error), param_hint="--formats") from None
    if output is None or output.kind != "folder":
        raise typer.BadParameter(
            "the formats are written per document into an output folder: add --out DIR/",
            param_hint="--formats",
        )
    return chosen
