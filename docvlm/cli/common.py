"""What every ``docvlm`` command shares: the options declared once, settings, error lines,
output and the human-readable form of a result."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import TypeAdapter
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from docvlm.engines import ENGINES
from docvlm.errors import DocVLMError, ExitCode
from docvlm.formats.files import formats_help
from docvlm.reading.assemble import STOP_WARNINGS
from docvlm.reading.options import DPI_RANGE, MAX_NEW_TOKENS_RANGE, option_help
from docvlm.results import Result, ResultBase
from docvlm.settings import Settings

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
    typer.Option("--pages", "-p", help=option_help("pages")),
]
Password = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--password", help=option_help("password")),
]
Dpi = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--dpi", min=DPI_RANGE[0], max=DPI_RANGE[1], help=option_help("dpi")),
]
MaxNewTokens = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--max-new-tokens",
        min=MAX_NEW_TOKENS_RANGE[0],
        max=MAX_NEW_TOKENS_RANGE[1],
        help=option_help("max_new_tokens"),
    ),
]
Orient = Annotated[bool, typer.Option("--orient/--no-orient", help=option_help("orient"))]
DeviceOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--device", help="auto, cpu or cuda (default: DOCVLM_DEVICE or auto)."),
]


def _engine_name(name: str | None) -> str | None:
    if name is not None and name not in ENGINES:
        raise typer.BadParameter(f"{name!r} is not an engine: use one of {', '.join(ENGINES)}")
    return name


EngineOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--engine",
        callback=_engine_name,
        metavar="|".join(ENGINES),  # the choices come from the table
        help="Generation engine (default: DOCVLM_ENGINE or auto; see docs/engine.md).",
    ),
]
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print JSON (results, or one Document per line).")
]
Formats = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--formats",
        help=f"Archive formats of each document, comma-separated: {formats_help()}; written "
        "into its folder (convert: with --out DIR/, default md; view: with --export DIR, "
        "from the records). See docs/formats.md.",
    ),
]
Out = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--out", "-o", help="Write the output to this file instead of stdout."),
]


def settings_for(device: str | None, engine: str | None = None) -> Settings:
    if device is not None and device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter("use auto, cpu or cuda", param_hint="--device")
    chosen: dict[str, str] = {} if engine is None else {"engine": engine}
    if device is not None:
        chosen["device"] = device
    return Settings(**chosen)


def error_line(message: str) -> None:
    """One unwrapped line on stderr, whatever the terminal width."""
    sys.stderr.write(f"error: {message}\n")


def fail(error: DocVLMError) -> None:
    """The error as one line, and the command's exit with its ``ExitCode``."""
    error_line(str(error))
    raise typer.Exit(ExitCode.of(error))


def emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        out.write_text(text, encoding="utf-8")
        err.print(f"wrote {out}")


RESULTS = TypeAdapter(list[Result])


def human(result: ResultBase) -> str:
    head = f"# {result.source} page {result.page} ({result.task})"
    if result.stop in STOP_WARNINGS:
        head += " ! " + STOP_WARNINGS[result.stop].format(task=result.task)
    body = result.summary() if result.status == "ok" else f"! {result.error}"
    return f"{head}\n{body}\n"


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
