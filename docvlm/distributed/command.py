"""``docvlm convert --ray ADDRESS``: the convert command's options handed to Ray Data."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from docvlm.archive.output import Output
from docvlm.archive.pipeline import Options
from docvlm.archive.runner import Observer
from docvlm.errors import DocVLMError, ExitCode
from docvlm.settings import Settings

__all__ = ["convert_on_ray"]


def _source(path: Path) -> str | Path:
    """A URI back from the Path typer made of it (``s3://b/k`` became ``s3:/b/k``)."""
    text = str(path)
    if not path.exists() and re.match(r"^[A-Za-z][\w+.-]*:/[^/]", text):
        return re.sub(r"^([A-Za-z][\w+.-]*):/", r"\1://", text)
    return path


def convert_on_ray(
    files: Sequence[Path],
    out: Output | None,
    options: Options,
    settings: Settings,
    checkpoint: str | None,
    address: str,
    *,
    actors: int,
    gpus_per_actor: float,
    redo: bool,
    max_error_rate: float | None,
    observer: Observer,
) -> int:
    """Run the job on Ray and report it as the local runner does; the exit code."""
    from docvlm.distributed import ScaleOptions, convert_dataset, import_ray

    if out is None:
        raise typer.BadParameter(
            "--ray writes to a folder of parts: give --out (NAME.parquet/, NAME.jsonl/, a URI)",
            param_hint="--out",
        )
    if max_error_rate is not None:
        raise typer.BadParameter("not available with --ray", param_hint="--max-error-rate")
    scale = ScaleOptions(actors=actors, gpus_per_actor=gpus_per_actor)
    try:
        import_ray()
    except DocVLMError as error:
        sys.stderr.write(f"error: {error}\n")
        return ExitCode.of(error)
    observer.started(None)
    try:
        summary = convert_dataset(
            [_source(f) for f in files],
            out,
            options,
            scale=scale,
            settings=settings,
            checkpoint=checkpoint,
            redo=redo,
            address=None if address == "auto" else address,
        )
    except ValueError as error:  # another job's records in --out
        raise typer.BadParameter(str(error), param_hint="--out") from None
    except DocVLMError as error:  # another run holds --out (a local run too): BUSY
        sys.stderr.write(f"error: {error}\n")
        return ExitCode.of(error)
    observer.finished(summary)
    return summary.exit_code
