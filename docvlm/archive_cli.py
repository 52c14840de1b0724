"""``docvlm status DEST``: what the manifest of a destination says is done."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from docvlm.manifest import Manifest, manifest_path

__all__ = ["status_command"]


def status_command(
    destination: Annotated[
        str, typer.Argument(help="The --out of a convert run (x.jsonl, x.parquet, DIR/).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print files done / partial / failed / pending and pages done / failed for DEST."""
    path = manifest_path(destination)
    if not path.exists():
        sys.stderr.write(f"error: {destination}: no manifest ({path} does not exist)\n")
        raise typer.Exit(1)
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
