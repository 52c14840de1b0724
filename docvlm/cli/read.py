"""``docvlm read-text|read-table|read-molecule|read-music FILES`` and ``docvlm ask``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from docvlm.cli.common import (
    RESULTS,
    Checkpoint,
    DeviceOption,
    Dpi,
    EngineOption,
    JsonFlag,
    MaxNewTokens,
    Orient,
    Out,
    Pages,
    Password,
    emit,
    error_line,
    fail,
    human,
    progress_bar,
    settings_for,
)
from docvlm.client import DocVLM
from docvlm.errors import DocVLMError, ExitCode, InputError
from docvlm.tasks import TASKS, TaskName

__all__ = ["READ_COMMANDS", "ask", "task_command"]

READ_COMMANDS: tuple[TaskName, ...] = ("text", "table", "molecule", "music")


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
    engine: str | None = None,
    orient: bool = True,
) -> None:
    """Read every file with one client; a file that fails is named on stderr and the
    others go on (exit status 1 at the end)."""
    results: list[Any] = []
    failed = False
    try:
        settings = settings_for(device, engine)
        with DocVLM(settings, checkpoint=checkpoint) as client, progress_bar() as bar:
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
                        orient=orient,
                    ):
                        results.extend(page.results)
                        bar.advance(job)
                except InputError as error:
                    if len(files) == 1:
                        raise
                    error_line(str(error))
                    failed = True
    except DocVLMError as error:
        fail(error)
        return
    if as_json:
        emit(RESULTS.dump_json(results, indent=2).decode(), out)
    else:
        emit("".join(human(r) for r in results), out)
    if failed:
        raise typer.Exit(ExitCode.FAILED)


def task_command(task: TaskName) -> Callable[..., None]:
    def command(
        files: Annotated[list[Path], typer.Argument(help="PDF or image files.")],
        checkpoint: Checkpoint = None,
        pages: Pages = None,
        password: Password = None,
        dpi: Dpi = None,
        max_new_tokens: MaxNewTokens = None,
        device: DeviceOption = None,
        engine: EngineOption = None,
        orient: Orient = True,
        as_json: JsonFlag = False,
        out: Out = None,
    ) -> None:
        _run_task(
            task,
            files,
            checkpoint,
            pages,
            password,
            dpi,
            max_new_tokens,
            device,
            as_json,
            out,
            engine=engine,
            orient=orient,
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


def ask(
    file: Annotated[Path, typer.Argument(help="PDF or image file.")],
    question: Annotated[str, typer.Argument(help="The question, in English.")],
    checkpoint: Checkpoint = None,
    pages: Pages = None,
    password: Password = None,
    dpi: Dpi = None,
    max_new_tokens: MaxNewTokens = None,
    device: DeviceOption = None,
    engine: EngineOption = None,
    orient: Orient = True,
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
        engine,
        orient,
    )
