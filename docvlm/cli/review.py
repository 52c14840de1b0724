"""``docvlm review OUT``: the weakest pages of a conversion output first, as a table or as
JSON (``docvlm schema review``); docs/review.md says what the numbers mean."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from docvlm.cli.common import error_line
from docvlm.errors import DocVLMError, ExitCode
from docvlm.tasks import TASKS

__all__ = ["review_command"]


def review_command(
    output: Annotated[
        Path,
        typer.Argument(
            help="What docvlm convert wrote: x.jsonl, x.parquet, NAME.parquet/ or DIR/."
        ),
    ],
    below: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            "--below",
            min=0.0,
            max=1.0,
            help="List only results whose confidence is below this (and those broken or "
            "without a confidence).",
        ),
    ] = None,
    task: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--task", "-t", help=f"Only this task's results: {', '.join(TASKS)}."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="List at most this many (0: all).")
    ] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list, weakest first.")
    ] = False,
) -> None:
    """List the results of OUTPUT that most need a person, weakest first: document, page,
    task, confidence and why; results a person corrected are left out (but those corrected
    only in some lines or cells, until corrected whole or their page is marked reviewed).
    Exit status 1 when OUTPUT cannot be read, 2 when it does not exist."""
    from docvlm.archive.edits import apply_log, read_log
    from docvlm.archive.output import Output, OutputError
    from docvlm.archive.review import partly_corrected, review, reviewed_pages

    if task is not None and task not in TASKS:
        raise typer.BadParameter(f"unknown task {task!r}", param_hint="--task")
    if not output.exists():  # a typo, not an output that cannot be read
        error_line(f"{output}: no such file or folder")
        raise typer.Exit(ExitCode.USAGE)
    try:
        found = Output.existing(output)
        corrections = read_log(found.corrections_file)  # docs/corrections.md: fixed by people
        documents = (apply_log(d, corrections) if corrections else d for d in found.records())
        items = review(
            documents,
            below=below,
            task=task,
            limit=limit or None,
            reviewed=reviewed_pages(corrections),
            partial=partly_corrected(corrections),
        )
    except (OutputError, DocVLMError, OSError) as error:
        error_line(str(error))
        raise typer.Exit(ExitCode.FAILED) from None
    if as_json:
        sys.stdout.write(json.dumps([item.model_dump(mode="json") for item in items]) + "\n")
        return
    rows = [
        (
            item.source,
            "-" if item.page is None else str(item.page),
            item.task or "-",
            "-" if item.confidence is None else f"{item.confidence:.3f}",
            ", ".join(item.reasons) + (f": {item.detail}" if item.detail else ""),
        )
        for item in items
    ]
    header = ("document", "page", "task", "confidence", "why")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        cells = [text.ljust(width) for text, width in zip(row, widths, strict=False)]
        sys.stdout.write("  ".join([*cells, row[4]]).rstrip() + "\n")
