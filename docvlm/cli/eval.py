"""``docvlm eval``: predictions scored against truth with the field's metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from docvlm.cli.common import err, fail
from docvlm.errors import DocVLMError

__all__ = ["evaluate"]


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
        fail(error)
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
