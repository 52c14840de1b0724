"""The ``docvlm`` command line: one module per command group.

    read      read-text, read-table, read-molecule, read-music, ask
    convert   convert (resumable archive runs), status, inspect, schema
    correct   correct, export, data corrections (people's corrections to an output)
    finetune  finetune, data
    eval      eval
    serve     serve, view
    info      info

Errors print one line (``error: <file>, page <n>: <cause>``) and exit with the status of
``docvlm.errors.ExitCode`` (the one table, printed in docs/errors.md); a batch ``convert``
reports each bad file and goes on, exiting 1 if any failed. Nothing else
in docvlm imports this package: it sits on top of the client, the runner and the server.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from docvlm.cli import convert, correct, finetune, info, read, serve
from docvlm.cli import eval as eval_commands
from docvlm.errors import ExitCode, SettingsError

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


def _version(shown: bool) -> None:
    if shown:
        from docvlm import __version__

        sys.stdout.write(f"docvlm {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Read scanned documents (text, tables, molecules, music) with PaliGemma 2."""


for _task in read.READ_COMMANDS:
    app.command(f"read-{_task}")(read.task_command(_task))
app.command()(read.ask)
app.command()(convert.convert)
app.command()(convert.inspect)
app.command("finetune")(finetune.finetune_command)
finetune.data_app.command("corrections")(correct.data_corrections)
app.add_typer(finetune.data_app, name="data")
app.command("eval")(eval_commands.evaluate)
app.command()(convert.schema)
app.command("status")(convert.status_command)  # what --out's manifest says
app.command("serve")(serve.serve_command)  # FastAPI loads only when run
app.command("view")(serve.view_command)
app.command("correct")(correct.correct_command)  # docs/corrections.md
app.command("export")(correct.export_command)
app.command("info")(info.info_command)  # device, dtype, quantization, threads, engine


def main() -> None:
    """The ``docvlm`` script: a bad ``DOCVLM_*`` setting is one line (exit USAGE, 2) in
    every command, wherever the settings are first read."""
    try:
        app()
    except SettingsError as error:
        sys.stderr.write(f"error: {error}\n")
        raise SystemExit(ExitCode.USAGE) from None
