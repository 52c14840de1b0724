"""The ``docvlm`` command line: one command per task, ``convert`` for whole documents.

Errors print one line (``error: <file>, page <n>: <cause>``) and exit with status 1; a
batch ``convert`` reports each bad file and goes on, exiting 1 if any failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import TypeAdapter
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperArgument, TyperGroup, TyperOption

from docvlm.archive_cli import convert_locally, status_command
from docvlm.assemble import STOP_WARNINGS
from docvlm.client import DocVLM
from docvlm.errors import DocVLMError, InputError
from docvlm.finetune.commands import data_app, finetune_command
from docvlm.info import info_command
from docvlm.results import Document, Result, ResultBase, json_schema
from docvlm.server.commands import serve_command, view_command
from docvlm.settings import Device, Settings
from docvlm.tasks import TASKS, TaskName

__all__ = ["app", "main"]


class _Commands(TyperGroup):
    """Typer's group with plain help: ``--pages PAGES`` and ``FILES...``, not ``<str>``.

    Typer labels every parameter with its Python type (``<bool>`` on a flag,
    ``<list[Path]>``, ``{files}...``); each command gets conventional metavars instead."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        for param in command.params if command is not None else ():
            if param.name is None or (param.metavar and isinstance(param, TyperOption)):
                continue
            label = param.name.upper()
            if isinstance(param, TyperOption) and (param.is_flag or param.count):
                param.metavar = ""
            elif isinstance(param, TyperArgument):
                shown = f"{label}..." if param.nargs != 1 else label
                # typer ignores an argument's metavar in two places; name it there too
                param.metavar = shown
                setattr(param, "display_type_rich", lambda ctx: None)  # noqa: B010
                setattr(param, "_usage_display_name", lambda shown=shown: shown)  # noqa: B010
            else:
                param.metavar = label
        return command


app = typer.Typer(
    name="docvlm",
    cls=_Commands,
    help="Read scanned documents (text, tables, molecules, music) with PaliGemma 2.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's layout: paragraphs rewrapped to the terminal
)
err = Console(stderr=True)

Checkpoint = Annotated[
    Optional[str],  # noqa: UP045 - typer reads the annotation at run time
    typer.Option(
        "--checkpoint",
        "-c",
        help="Hub id or local directory of the model (default: DOCVLM_<TASK>_CHECKPOINT, "
        "then the task's public checkpoint).",
    ),
]
Pages = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--pages", "-p", help="Pages to read, from 1: '1-3,7', '5-' (default: all)."),
]
Password = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--password", help="Password of an encrypted PDF."),
]
Dpi = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--dpi", min=36, max=1200, help="PDF rendering resolution (default 150)."),
]
MaxNewTokens = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--max-new-tokens", min=1, help="Longest answer (default: the task's)."),
]
DeviceOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--device", help="auto, cpu or cuda (default: DOCVLM_DEVICE or auto)."),
]
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print JSON (results, or one Document per line).")
]
Out = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--out", "-o", help="Write the output to this file instead of stdout."),
]


def _settings(device: str | None) -> Settings:
    if device is not None and device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter("use auto, cpu or cuda", param_hint="--device")
    if device is None:
        return Settings()
    chosen: Device = "cuda" if device == "cuda" else "cpu" if device == "cpu" else "auto"
    return Settings(device=chosen)


def _error_line(message: str) -> None:
    """One unwrapped line on stderr, whatever the terminal width."""
    sys.stderr.write(f"error: {message}\n")


def _fail(error: DocVLMError) -> None:
    _error_line(str(error))
    raise typer.Exit(1)


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        out.write_text(text, encoding="utf-8")
        err.print(f"wrote {out}")


_RESULTS = TypeAdapter(list[Result])


def _human(result: ResultBase) -> str:
    head = f"# {result.source} page {result.page} ({result.task})"
    if result.stop in STOP_WARNINGS:
        head += " ! " + STOP_WARNINGS[result.stop].format(task=result.task)
    body = result.summary() if result.status == "ok" else f"! {result.error}"
    return f"{head}\n{body}\n"


def _run_task(
    task: TaskName,
    files: Sequence[Path],
    checkpoint: str | None,
    pages: str | None,
    password: str | None,
    dpi: int | None,
    max_new_tokens: int | None,
    device: str | None,
    as_json: bool,
    out: Path | None,
    question: str | None = None,
) -> None:
    """Read every file with one client; a file that fails is named on stderr and the
    others go on (exit status 1 at the end)."""
    results: list[Any] = []
    failed = False
    try:
        with DocVLM(_settings(device), checkpoint=checkpoint) as client, _progress() as bar:
            for file in files:
                job = bar.add_task(f"{task} {file.name}", total=None)
                try:
                    for page in client.iter_pages(
                        file,
                        (task,),
                        pages=pages,
                        password=password,
                        dpi=dpi,
                        max_new_tokens=max_new_tokens,
                        question=question,
                    ):
                        results.extend(page.results)
                        bar.advance(job)
                except InputError as error:
                    if len(files) == 1:
                        raise
                    _error_line(str(error))
                    failed = True
    except DocVLMError as error:
        _fail(error)
        return
    if as_json:
        _emit(_RESULTS.dump_json(results, indent=2).decode(), out)
    else:
        _emit("".join(_human(r) for r in results), out)
    if failed:
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _task_command(task: TaskName) -> Callable[..., None]:
    def command(
        files: Annotated[list[Path], typer.Argument(help="PDF or image files.")],
        checkpoint: Checkpoint = None,
        pages: Pages = None,
        password: Password = None,
        dpi: Dpi = None,
        max_new_tokens: MaxNewTokens = None,
        device: DeviceOption = None,
        as_json: JsonFlag = False,
        out: Out = None,
    ) -> None:
        _run_task(
            task, files, checkpoint, pages, password, dpi, max_new_tokens, device, as_json, out
        )

    budget = TASKS[task].max_new_tokens
    command.__doc__ = (
        f"{TASKS[task].summary.capitalize()} from each page of each of FILES (one model "
        "load for all; a file that fails is named and the others go on).\n\n"
        f"On a CPU the 3B model writes about a token a second or less: a page that uses the "
        f"task's whole budget ({budget} tokens) takes an hour or more. A runaway loop stops after "
        "DOCVLM_REPETITION_SPAN tokens; --max-new-tokens lowers the budget. See "
        "docs/engine.md (On the CPU)."
    )
    return command


READ_COMMANDS: tuple[TaskName, ...] = ("text", "table", "molecule", "music")
for _task in READ_COMMANDS:
    app.command(f"read-{_task}")(_task_command(_task))


@app.command()
def ask(
    file: Annotated[Path, typer.Argument(help="PDF or image file.")],
    question: Annotated[str, typer.Argument(help="The question, in English.")],
    checkpoint: Checkpoint = None,
    pages: Pages = None,
    password: Password = None,
    dpi: Dpi = None,
    max_new_tokens: MaxNewTokens = None,
    device: DeviceOption = None,
    as_json: JsonFlag = False,
    out: Out = None,
) -> None:
    """Answer QUESTION about each page of FILE."""
    _run_task(
        "ask",
        [file],
        checkpoint,
        pages,
        password,
        dpi,
        max_new_tokens,
        device,
        as_json,
        out,
        question,
    )


@app.command()
def convert(
    files: Annotated[
        list[Path], typer.Argument(help="PDF or image files, folders, zip or tar archives.")
    ],
    task: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--task", "-t", help=f"Task to run, repeatable: {', '.join(TASKS)} (default: text)."
        ),
    ] = None,
    layout: Annotated[
        bool,
        typer.Option(
            "--layout",
            help="Find regions first (layout task) and read each with the task of its label "
            "(table, molecule, music, text; figure -> caption), in reading order.",
        ),
    ] = False,
    question: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--question", "-q", help="The question for the ask task."),
    ] = None,
    checkpoint: Checkpoint = None,
    pages: Pages = None,
    password: Password = None,
    dpi: Dpi = None,
    max_new_tokens: MaxNewTokens = None,
    device: DeviceOption = None,
    as_json: JsonFlag = False,
    out: Annotated[
        Optional[str],  # noqa: UP045 - a str: a trailing / (a folder) matters
        typer.Option(
            "--out",
            "-o",
            help="Where to write, resumably: x.jsonl, x.parquet, NAME.parquet/ (Parquet "
            "parts), DIR/ (files per document). Default: stdout.",
        ),
    ] = None,
    redo: Annotated[
        bool, typer.Option("--redo", help="Ignore the manifest of --out and start over.")
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Convert again the files --out records as failed or partial (e.g. with "
            "--password now given); each new record replaces the old one.",
        ),
    ] = False,
    passwords: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--passwords",
            help='A JSON object of file name (or path as recorded) to password: {"a.pdf": "pw"}.',
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="If another run is writing --out, wait for it (else exit 4)."),
    ] = False,
    max_error_rate: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            "--max-error-rate",
            min=0.0,
            max=1.0,
            help="Stop (exit 3) as soon as more than this fraction of files failed (judged "
            "after 10).",
        ),
    ] = None,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format", help="auto (a progress bar on a terminal, else JSON lines), rich, json."
        ),
    ] = "auto",
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Render worker processes (default 2).")
    ] = 2,
    include: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--include", help="In folders, read only files matching this glob."),
    ] = None,
    exclude: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--exclude", help="In folders, leave out files matching this glob."),
    ] = None,
    ray: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Run on Ray Data at this address ('local' starts Ray here, 'auto' joins the "
            "running cluster); --out is a folder of parts (local path or URI such as s3://).",
        ),
    ] = None,
    actors: Annotated[
        int, typer.Option("--actors", min=1, help="With --ray: model actors (default 1).")
    ] = 1,
    gpus_per_actor: Annotated[
        float, typer.Option("--gpus-per-actor", min=0, help="With --ray: GPUs per actor.")
    ] = 0.0,
) -> None:
    """Convert FILES: every page through the chosen tasks; bad files are reported, not fatal.

    Folders are read recursively (hidden files skipped), zip/tar archives member by member.
    With --out, each Document is written as it finishes, a manifest beside it records what
    is done, and the same command run again resumes. Exit status: 0 all converted, 1 some
    files failed (each reported with its cause), 3 stopped by --max-error-rate, 4 another
    run is writing --out, 5 the run stopped on an error such as a full disk (rerun resumes).
    """
    from docvlm.pipeline import Options
    from docvlm.progress import observer_for
    from docvlm.sinks import sink_kind

    names = task or ["text"]
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise typer.BadParameter(f"unknown task {unknown[0]!r}", param_hint="--task")
    tasks = [spec.name for name, spec in TASKS.items() if name in names]
    if "ask" in tasks and not question:
        raise typer.BadParameter("the ask task needs --question", param_hint="--task")
    if log_format not in ("auto", "rich", "json"):
        raise typer.BadParameter("use auto, rich or json", param_hint="--log-format")
    try:
        sink_kind(out or "-.jsonl")
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--out") from None

    def to_stdout(document: Document) -> None:
        text = document.model_dump_json() + "\n" if as_json else ""
        text = text or "".join(_human(r) for p in document.pages for r in p.results)
        sys.stdout.write(text)
        sys.stdout.flush()

    settings = _settings(device)
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
    )
    if ray is not None and (retry_failed or wait or passwords):
        raise typer.BadParameter("not with --ray", param_hint="--retry-failed/--wait/--passwords")
    if ray is not None:  # docvlm.distributed: Ray loads only here
        from docvlm.distributed.command import convert_on_ray

        code = convert_on_ray(
            files,
            out,
            options,
            settings,
            checkpoint,
            ray,
            actors=actors,
            gpus_per_actor=gpus_per_actor,
            redo=redo,
            max_error_rate=max_error_rate,
            observer=observer_for(log_format, err),  # type: ignore[arg-type]
        )
        raise typer.Exit(code)
    code = convert_locally(  # docvlm.archive_cli: the run, its errors and exit codes
        files,
        out,
        options,
        settings,
        checkpoint,
        redo=redo,
        max_error_rate=max_error_rate,
        retry_failed=retry_failed,
        passwords=passwords,
        wait=wait,
        observer=observer_for(log_format, err),  # type: ignore[arg-type]
        on_document=None if out else to_stdout,
    )
    raise typer.Exit(code)


@app.command()
def inspect(
    paths: Annotated[list[Path], typer.Argument(help="Files, folders or zip/tar archives.")],
    password: Password = None,
    dpi: Dpi = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per file.")] = False,
) -> None:
    """List each file's detected type and pages (with sizes), or the error that stops it.

    Folders are walked recursively (hidden files skipped) and archives expanded. Nothing
    is rendered, so it is quick to run over a whole archive before converting it.
    """
    from docvlm.inspection import inspect_sources

    settings = Settings()
    bad = 0
    for info in inspect_sources(
        paths, password=password, dpi=dpi or settings.dpi, limits=settings.limits()
    ):
        bad += info.error is not None
        if as_json:
            sys.stdout.write(info.model_dump_json() + "\n")
        elif info.error:
            sys.stdout.write(f"{info.source}\t{info.type or '-'}\terror: {info.error}\n")
        else:
            sizes = ", ".join(f"{p.width}x{p.height}" for p in info.pages[:5])
            more = f", ... ({len(info.pages)} pages)" if len(info.pages) > 5 else ""
            sys.stdout.write(
                f"{info.source}\t{info.type}\t{len(info.pages)} page(s): {sizes}{more}\n"
            )
    if bad:
        raise typer.Exit(1)


app.command("finetune")(finetune_command)
app.add_typer(data_app, name="data")


@app.command("eval")
def evaluate(
    task: Annotated[str, typer.Option("--task", "-t", help="table, molecule, music or text.")],
    predictions: Annotated[
        Path, typer.Option("--predictions", "-p", help="JSONL of predictions (or read-* --json).")
    ],
    truth: Annotated[Path, typer.Option("--truth", help="JSONL of truth records, with ids.")],
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", "-o", help="Where to write the JSON report (eval-<task>.json)."),
    ] = None,
) -> None:
    """Score predictions against truth with the field's metrics; print a table, write JSON."""
    from rich.table import Table as RichTable

    from docvlm.eval.runner import EvalTask
    from docvlm.eval.runner import evaluate as run_eval

    names: dict[str, EvalTask] = {
        "table": "table",
        "molecule": "molecule",
        "music": "music",
        "text": "text",
    }
    if task not in names:
        raise typer.BadParameter("use table, molecule, music or text", param_hint="--task")
    try:
        report = run_eval(names[task], predictions, truth)
    except DocVLMError as error:
        _fail(error)
        return
    view = RichTable(title=f"{task}: {report.count} records ({report.missing} missing)")
    for column in ("metric", "value (%)", "paper"):
        view.add_column(column)
    for name, value in report.metrics.items():
        view.add_row(name, f"{value:.2f}", report.paper.get(name, ""))
    Console().print(view)
    for record, reason in report.scored_zero.items():
        err.print(f"{record}: {reason}")
    target = out or Path(f"eval-{task}.json")
    target.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    err.print(f"wrote {target}")


@app.command()
def schema(
    kind: Annotated[
        str,
        typer.Argument(
            help="results (what read-* prints), document (a JSON Lines record, document.json) "
            "or row (a Parquet row)."
        ),
    ] = "results",
) -> None:
    """Print the JSON Schema of the results, of a converted Document, or of a Parquet row."""
    if kind not in ("results", "document", "row"):
        raise typer.BadParameter("use results, document or row", param_hint="KIND")
    if kind == "row":
        from docvlm.parquet import row_json_schema

        print(json.dumps(row_json_schema(), indent=2))
        return
    print(json.dumps(json_schema("document" if kind == "document" else "results"), indent=2))


app.command("status")(status_command)  # docvlm.archive_cli: what --out's manifest says
app.command("serve")(serve_command)  # docvlm.server.commands: FastAPI loads only when run
app.command("view")(view_command)
app.command("info")(info_command)  # docvlm.info: device, dtype, quantization, threads, engine


def main() -> None:
    app()


if __name__ == "__main__":
    main()
