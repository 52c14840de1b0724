"""``docvlm finetune`` and ``docvlm data ...``: the command-line face of this package.

Registered in ``docvlm.cli``; everything heavy is imported inside the commands.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from docvlm.errors import DocVLMError
from docvlm.finetune.recipes import TRAINABLE_TASKS

__all__ = ["data_app", "finetune_command"]

err = Console(stderr=True)
data_app = typer.Typer(
    help="Make training data (JSON Lines of {image, target}) for `docvlm finetune`.",
    no_args_is_help=True,
)
OutFile = Annotated[Path, typer.Option("--out", "-o", help="JSON Lines file to write.")]


def _fail(error: DocVLMError) -> None:
    sys.stderr.write(f"error: {error}\n")
    raise typer.Exit(1)


def finetune_command(
    task: Annotated[str, typer.Option("--task", "-t", help="table, molecule, music or text.")],
    data: Annotated[
        Path, typer.Option("--data", help="JSON Lines of {image, target} (paths relative to it).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the new checkpoint.")],
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Checkpoint to start from (default: paligemma2-3b-pt at the task's size).",
        ),
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option("--max-steps", min=1, help="Train exactly N steps, cycling the data."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Passes over the data.")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Examples per forward pass.")
    ] = None,
    grad_accum: Annotated[
        int | None, typer.Option("--grad-accum", min=1, help="Forward passes per step.")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", help="Peak rate.")
    ] = None,
    label_smoothing: Annotated[float | None, typer.Option("--label-smoothing")] = None,
    lora_rank: Annotated[
        int | None,
        typer.Option("--lora-rank", min=0, help="LoRA rank (16); 0 trains all weights."),
    ] = None,
    freeze_vision: Annotated[
        bool,
        typer.Option(
            "--freeze-vision", help="Keep the vision tower (with --lora-rank 0: text weights)."
        ),
    ] = False,
    qlora: Annotated[bool, typer.Option("--qlora", help="4-bit NF4 base (CUDA).")] = False,
    precision: Annotated[str, typer.Option(help="auto, float32 or bfloat16 (CUDA).")] = "auto",
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing")] = False,
    save: Annotated[str, typer.Option(help="merged checkpoint, or the LoRA adapter.")] = "merged",
    save_every: Annotated[
        int | None, typer.Option("--save-every", min=1, help="Resumable checkpoint every N steps.")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the latest checkpoint in OUT.")
    ] = False,
    eval_data: Annotated[
        Path | None, typer.Option("--eval-data", help="Held-out JSON Lines.")
    ] = None,
    eval_fraction: Annotated[
        float, typer.Option("--eval-fraction", help="Share of --data held out instead.")
    ] = 0.0,
    eval_every: Annotated[
        int | None,
        typer.Option("--eval-every", min=1, help="Score the held-out set every N steps."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the data order and new weights.")] = 0,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")] = None,
) -> None:
    """Fine-tune a PaliGemma 2 checkpoint for TASK; the result loads with --checkpoint OUT."""
    from pydantic import ValidationError

    from docvlm.finetune.options import FinetuneOptions
    from docvlm.finetune.train import finetune
    from docvlm.settings import Settings

    if task not in TRAINABLE_TASKS:
        raise typer.BadParameter(f"use {', '.join(TRAINABLE_TASKS)}", param_hint="--task")
    try:
        options = FinetuneOptions.model_validate(
            {
                "task": task,
                "data": data,
                "output": out,
                "base": base,
                "epochs": epochs,
                "max_steps": max_steps,
                "batch_size": batch_size,
                "grad_accum": grad_accum,
                "learning_rate": learning_rate,
                "label_smoothing": label_smoothing,
                "lora_rank": lora_rank,
                "freeze_vision": freeze_vision,
                "quantization": "nf4" if qlora else "none",
                "precision": precision,
                "gradient_checkpointing": gradient_checkpointing,
                "save": save,
                "save_every": save_every,
                "resume": resume,
                "eval_data": eval_data,
                "eval_fraction": eval_fraction,
                "eval_every": eval_every,
                "seed": seed,
            }
        )
        settings = Settings(device=device) if device else Settings()
    except ValidationError as error:
        first = error.errors()[0]
        raise typer.BadParameter(first["msg"], param_hint=str(first["loc"][0])) from None
    except DocVLMError as error:
        _fail(error)
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    state: dict[str, Any] = {}

    def announce(plan: Any, run: Any) -> None:
        view = Table(
            title=f"docvlm finetune --task {task}: {run.steps} steps", title_justify="left"
        )
        for column in ("setting", "value", "from"):
            view.add_column(column)
        for row in plan.rows():
            view.add_row(*row)
        err.print(view)
        err.print(
            f"{len(run.train)} training examples, {len(run.held_out)} held out, "
            f"{len(run.skipped)} left out"
        )
        for reason in run.skipped[:10]:
            err.print(f"  left out: {reason}", markup=False)
        state["job"] = bar.add_task("training", total=run.steps)
        bar.start()

    def progress(event: Any) -> None:
        text = f"training  loss {event.loss:.4f}  lr {event.learning_rate:.2g}"
        if event.held_out is not None:
            state["held"] = f"  held-out {event.held_out:.2f}"
        bar.update(state["job"], completed=event.step, description=text + state.get("held", ""))
        if not err.is_terminal and (event.step % 50 == 0 or event.step == event.total):
            err.print(f"step {event.step}/{event.total} {text}{state.get('held', '')}")

    try:
        report = finetune(options, settings, progress, announce)
    except DocVLMError as error:
        _fail(error)
        return
    finally:
        bar.stop()
    evals = f"; held-out {report.evals[-1]}" if report.evals else ""
    err.print(
        f"{report.steps} steps on {report.examples} examples; loss "
        f"{report.losses[0]:.3f} -> {report.losses[-1]:.3f}{evals}; wrote {report.output}",
        markup=False,
    )


def _write(records: Iterable[dict[str, str]], out: Path, skipped: list[str]) -> None:
    from docvlm.finetune.data import write_records

    count = write_records(records, out)
    for reason in skipped:
        err.print(f"left out: {reason}", markup=False)
    err.print(f"wrote {count} records to {out} ({len(skipped)} left out)", markup=False)
    if count == 0:
        raise typer.Exit(1)


@data_app.command("pubtabnet")
def data_pubtabnet(
    annotations: Annotated[Path, typer.Argument(help="PubTabNet or FinTabNet JSON Lines.")],
    out: OutFile,
    images: Annotated[
        Path | None, typer.Option(help="Folder of the images (default: beside the annotations).")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Only this split (train, val).")] = None,
    coords: Annotated[bool, typer.Option(help="Each cell's box as coords loc tokens.")] = False,
) -> None:
    """Tables: HTML with each cell's text (and box) from PubTabNet-style annotations."""
    from docvlm.finetune.datasets import pubtabnet_records

    skipped: list[str] = []
    try:
        records = list(
            pubtabnet_records(
                annotations, images=images, split=split, coords=coords, skipped=skipped
            )
        )
    except DocVLMError as error:
        _fail(error)
        return
    _write(records, out, skipped)


@data_app.command("molecules")
def data_molecules(
    folder: Annotated[Path, typer.Argument(help="Folder of structure images.")],
    out: OutFile,
    labels: Annotated[
        Path | None, typer.Option(help="TSV/CSV of image name and SMILES (else MOL files beside).")
    ] = None,
) -> None:
    """Molecules: canonical SMILES for each image, from MOL files or a SMILES table."""
    from docvlm.finetune.datasets import molecule_records

    skipped: list[str] = []
    _write(list(molecule_records(folder, labels=labels, skipped=skipped)), out, skipped)


@data_app.command("kern")
def data_kern(
    folder: Annotated[Path, typer.Argument(help="Folder of score images with kern files.")],
    out: OutFile,
) -> None:
    """Music: normalised **kern for each image, from the kern file of the same name."""
    from docvlm.finetune.datasets import kern_records

    skipped: list[str] = []
    _write(list(kern_records(folder, skipped=skipped)), out, skipped)


Count = Annotated[int, typer.Option("--count", "-n", min=1, help="Images to make.")]
Seed = Annotated[int, typer.Option("--seed", help="Same seed, same images and records.")]
Noise = Annotated[
    float, typer.Option("--noise", min=0.0, help="Scan noise strength (0: clean drawings).")
]
OutDir = Annotated[Path, typer.Option("--out", "-o", help="Folder for images/ and train.jsonl.")]


def _synthesize(
    kind: str, sources: list[str], out: Path, count: int, seed: int, noise: float, **extra: Any
) -> None:
    from docvlm.finetune.synthetic import synthesize

    try:
        written, skipped = synthesize(kind, sources, out, count, seed, noise, **extra)  # type: ignore[arg-type]
    except DocVLMError as error:
        _fail(error)
        return
    for reason in skipped[:20]:
        err.print(f"left out: {reason}", markup=False)
    err.print(f"wrote {written} images and {out / 'train.jsonl'}", markup=False)


@data_app.command("synth-molecules")
def synth_molecules(
    smiles: Annotated[Path, typer.Argument(help=".smi file (SMILES in the first column).")],
    out: OutDir,
    count: Count = 1000,
    seed: Seed = 0,
    noise: Noise = 1.0,
) -> None:
    """Molecules drawn by RDKit in varied styles, each with its canonical SMILES."""
    from docvlm.finetune.synthetic import read_smiles

    _synthesize("molecules", read_smiles(smiles), out, count, seed, noise)


@data_app.command("synth-music")
def synth_music(
    kern: Annotated[list[Path], typer.Argument(help="**kern files (cut into excerpts).")],
    out: OutDir,
    count: Count = 1000,
    measures: Annotated[int, typer.Option(min=1, help="Bars per excerpt.")] = 4,
    seed: Seed = 0,
    noise: Noise = 1.0,
) -> None:
    """Kern excerpts engraved by verovio, each with its normalised **kern."""
    from docvlm.finetune.synthetic import kern_excerpts

    excerpts = [e for path in kern for e in kern_excerpts(path.read_text("utf-8"), measures)]
    _synthesize("music", excerpts, out, count, seed, noise)


@data_app.command("synth-tables")
def synth_tables(
    out: OutDir,
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="PubTabNet-style JSON Lines whose tables to draw (default: random tables).",
        ),
    ] = None,
    count: Count = 1000,
    coords: Annotated[bool, typer.Option(help="Each cell's box as coords loc tokens.")] = False,
    seed: Seed = 0,
    noise: Noise = 1.0,
) -> None:
    """Tables drawn from HTML with PIL, each with its HTML target."""
    import random

    from docvlm.finetune.datasets import pubtabnet_target
    from docvlm.finetune.tables import random_table_html

    if source is not None:
        import json

        lines = source.read_text("utf-8").splitlines()
        tables = [pubtabnet_target(json.loads(line)) for line in lines if line.strip()]
    else:
        tables = [random_table_html(random.Random(f"{seed}:table:{i}")) for i in range(count)]
    _synthesize("tables", tables, out, count, seed, noise, coords=coords)
