"""``docvlm correct``, ``docvlm export`` and ``docvlm data corrections``: corrections made
with other tools applied to a conversion output, the output written out corrected, and
training examples made of the corrections (docs/corrections.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from pydantic import ValidationError

from docvlm.cli.common import err
from docvlm.errors import DocVLMError, ExitCode, SettingsError

if TYPE_CHECKING:
    from docvlm.archive.output import Output

__all__ = ["correct_command", "data_corrections", "export_command"]

OutputPath = Annotated[
    Path, typer.Argument(help="The conversion output (--out of docvlm convert).", exists=True)
]


def _cause(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def correct_command(
    output: OutputPath,
    corrections: Annotated[
        Path, typer.Argument(help="JSON Lines, one correction a line (docs/corrections.md).")
    ],
    by: Annotated[
        Optional[str],  # noqa: UP045 - typer reads the annotation at run time
        typer.Option("--by", help="Who made the corrections (a line's own 'by' wins)."),
    ] = None,
) -> None:
    """Apply a file of corrections to a conversion output; each refused line is one line
    on stderr (exit 1 when any was refused, the good ones applied; 2 when the file cannot
    be read)."""
    from docvlm.archive.edits import Correction, CorrectionError
    from docvlm.archive.output import Output, OutputError

    try:  # utf-8-sig: a file saved by Excel starts with a byte order mark
        text = corrections.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        cause = "no such file" if isinstance(error, FileNotFoundError) else error
        err.print(f"error: {corrections}: cannot read it ({cause})", markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.USAGE) from None  # the command cannot start, as for a bad path
    applied = refused = 0
    try:
        found = Output.existing(output)
        with found.lock():
            store = found.corrections(lock=False)  # held above
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    store.apply(Correction.model_validate(json.loads(line)), by=by)
                    applied += 1
                    continue
                except json.JSONDecodeError as error:
                    cause = f"not JSON ({error.msg})"
                except ValidationError as error:
                    cause = _cause(error)
                except CorrectionError as error:
                    cause = str(error)
                refused += 1
                err.print(
                    f"{corrections}, line {number}: refused: {cause}",
                    markup=False,
                    soft_wrap=True,
                )
    except (DocVLMError, OutputError) as error:
        err.print(f"error: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.of(error)) from None
    err.print(f"applied {applied} correction(s), refused {refused}", markup=False, soft_wrap=True)
    if refused:
        raise typer.Exit(ExitCode.FAILED)


def export_command(
    output: OutputPath,
    destination: Annotated[
        Path, typer.Argument(help="Where to write: x.jsonl, x.parquet, NAME.parquet/ or DIR/.")
    ],
    formats: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--formats", help="With DIR/: the formats of each document's folder."),
    ] = None,
) -> None:
    """Write a conversion output's records, with its corrections, to another destination."""
    from docvlm.archive.corrections import corrected_documents
    from docvlm.archive.output import Output

    count = 0
    try:
        chosen = formats.split(",") if formats else None
        source, target = Output.existing(output), Output.parse(destination)
        _check_export(source, target)
        # both held: a conversion writing either (or a second export) is refused, not raced
        with source.lock(), target.lock(), target.open_sink(formats=chosen) as sink:
            for document in corrected_documents(source):
                sink.write(document)
                count += 1
    except (DocVLMError, ValueError, OSError) as error:
        err.print(f"error: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.of(error)) from None
    err.print(f"wrote {count} document(s) to {destination}", markup=False, soft_wrap=True)


def _check_export(source: Output, target: Output) -> None:
    """``SettingsError`` for a target that is the source (it would be emptied before it is
    read) or holds a conversion (its manifest would no longer describe its records)."""
    if target.lock_file == source.lock_file:
        raise SettingsError(f"{target}: that is the output itself; export to another place")
    if target.manifest_file.exists():
        raise SettingsError(
            f"{target}: a conversion's destination (it has {target.manifest_file.name}); "
            "export to a new place, or use docvlm convert --redo to write it again"
        )


def data_corrections(
    output: OutputPath,
    task: Annotated[str, typer.Option("--task", help="table, text, molecule or music.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON Lines file to write.")],
    root: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--root", help="Folder the records' relative source paths start from."),
    ] = None,
) -> None:
    """Training examples from corrections: each corrected result's crop and its target."""
    from docvlm.archive.examples import correction_examples
    from docvlm.archive.output import Output
    from docvlm.finetune.data import write_records
    from docvlm.settings import Settings

    skipped: list[str] = []
    settings = Settings()
    images = out.with_name(out.stem + "-images")
    try:
        records = list(
            correction_examples(
                Output.existing(output),
                task,
                images,
                root=root,
                dpi=settings.dpi,
                limits=settings.limits(),
                skipped=skipped,
            )
        )
    except (DocVLMError, ValueError) as error:
        err.print(f"error: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.FAILED) from None
    for reason in skipped:
        err.print(f"left out: {reason}", markup=False, soft_wrap=True)
    if not records:
        err.print(
            f"error: {output}: no corrected {task} result to learn from",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(ExitCode.FAILED)
    count = write_records(records, out)
    err.print(
        f"wrote {count} records to {out} ({len(skipped)} left out)", markup=False, soft_wrap=True
    )
