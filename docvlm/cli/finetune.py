"""``docvlm finetune`` and ``docvlm data ...``: the command-line face of this package.

Registered in ``docvlm.cli``; everything heavy is imported inside the commands.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

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

from docvlm.errors import DocVLMError, ExitCode, InputError
from docvlm.finetune.recipes import TRAINABLE_TASKS

if TYPE_CHECKING:
    from docvlm.finetune.options import FinetuneOptions
    from docvlm.settings import Settings

__all__ = ["data_app", "finetune_command"]

err = Console(stderr=True)
data_app = typer.Typer(
    help="Make training data (JSON Lines of {image, target}) for `docvlm finetune`.",
    no_args_is_help=True,
)
OutFile = Annotated[Path, typer.Option("--out", "-o", help="JSON Lines file to write.")]


def _fail(error: DocVLMError) -> NoReturn:
    sys.stderr.write(f"error: {error}\n")
    raise typer.Exit(ExitCode.of(error))


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
    label_smoothing: Annotated[
        float | None,
        typer.Option("--label-smoothing", help="Cross-entropy label smoothing (0 to <1)."),
    ] = None,
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
    options, settings = _validated(dict(locals()))  # the flags, and nothing else yet
    from docvlm.finetune.train import finetune

    view = _TrainingView(options)
    try:
        report = finetune(options, settings, view.progress, view.announce)
    except DocVLMError as error:
        _fail(error)
    except KeyboardInterrupt:
        view.stop()
        _interrupted(options)
    finally:
        view.stop()
    err.print(_summary(report), markup=False)


def _validated(flags: dict[str, Any]) -> tuple[FinetuneOptions, Settings]:
    """The command's flags as ``FinetuneOptions`` and ``Settings``; a bad value is a usage
    error naming its flag."""
    from pydantic import ValidationError

    from docvlm.finetune.options import FinetuneOptions
    from docvlm.settings import Settings

    if flags["task"] not in TRAINABLE_TASKS:
        raise typer.BadParameter(f"use {', '.join(TRAINABLE_TASKS)}", param_hint="--task")
    device = flags.pop("device")
    flags["output"] = flags.pop("out")
    flags["quantization"] = "nf4" if flags.pop("qlora") else "none"
    try:
        return FinetuneOptions.model_validate(flags), (
            Settings(device=device) if device else Settings()
        )
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0])
        option = {"output": "--out"}.get(field, "--" + field.replace("_", "-"))
        raise typer.BadParameter(first["msg"], param_hint=option) from None
    except DocVLMError as error:
        _fail(error)


class _TrainingView:
    """What a training run shows on stderr: the plan as a table, then a progress bar (a
    line every 50 steps when stderr is not a terminal)."""

    def __init__(self, options: FinetuneOptions) -> None:
        self._options = options
        self._held = ""
        self._job: Any = None
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            disable=not err.is_terminal,
        )

    def announce(self, plan: Any, run: Any) -> None:
        options = self._options
        view = Table(
            title=f"docvlm finetune --task {options.task}: {run.steps} steps",
            title_justify="left",
        )
        for column in ("setting", "value", "from"):
            view.add_column(column)
        for row in plan.rows(run.resolution):
            view.add_row(*row)
        err.print(view)
        err.print(
            f"{len(run.train)} training examples, {len(run.held_out)} held out, "
            f"{len(run.skipped)} left out"
        )
        for reason in run.skipped[:10]:
            err.print(f"  left out: {reason}", markup=False)
        if options.resume:
            where = run.resume_from
            err.print(
                f"resuming from {where}"
                if where
                else f"nothing to resume in {options.output / 'checkpoints'}: starting at step 0",
                markup=False,
            )
        self._job = self._bar.add_task("training", total=run.steps)
        self._bar.start()

    def progress(self, event: Any) -> None:
        text = f"training  loss {event.loss:.4f}  lr {event.learning_rate:.2g}"
        if event.held_out is not None:
            self._held = f"  held-out {event.held_out:.2f}"
        self._bar.update(self._job, completed=event.step, description=text + self._held)
        if not err.is_terminal and (event.step % 50 == 0 or event.step == event.total):
            err.print(f"step {event.step}/{event.total} {text}{self._held}")

    def stop(self) -> None:
        self._bar.stop()


def _summary(report: Any) -> str:
    """The run in one line: steps, examples, the loss, the last held-out scores."""
    evals = ""
    if report.evals:
        last = report.evals[-1]
        evals = "; held-out " + ", ".join(
            f"{name} {value:.2f}" for name, value in last.items() if name != "step"
        )
    steps = f"{report.steps} step" + ("" if report.steps == 1 else "s")
    return (
        f"{steps} on {report.examples} examples; loss "
        f"{report.losses[0]:.3f} -> {report.losses[-1]:.3f}{evals}; wrote {report.output}"
    )


def _interrupted(options: Any) -> NoReturn:
    """Ctrl-C: say what a rerun with --resume would start from, and exit 130."""
    from docvlm.finetune.state import latest_checkpoint

    latest = latest_checkpoint(options.output / "checkpoints")
    if latest is not None:
        hint = f"the newest checkpoint is {latest}: rerun the same command with --resume"
    elif options.save_every:
        hint = "no checkpoint was written yet (--save-every steps); a rerun starts over"
    else:
        hint = "nothing was saved: --save-every N writes checkpoints that --resume continues"
    sys.stderr.write(f"interrupted; {hint}\n")
    raise typer.Exit(ExitCode.INTERRUPTED)


def _write(
    convert: Callable[[list[str]], Iterable[dict[str, str]]], out: Path, source: Path
) -> None:
    """Write what ``convert`` (given the list to add left-out reasons to) yields; exit 1
    saying why when nothing usable is written."""
    from docvlm.finetune.data import write_records

    skipped: list[str] = []
    try:
        records = list(convert(skipped))
    except DocVLMError as error:
        _fail(error)
        return
    for reason in skipped:
        err.print(f"left out: {reason}", markup=False, soft_wrap=True)
    if not records:
        _fail(InputError(f"no usable record ({len(skipped)} left out)", source=str(source)))
    count = write_records(records, out)
    message = f"wrote {count} records to {out} ({len(skipped)} left out)"
    err.print(message, markup=False, soft_wrap=True)


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

    _write(
        lambda skipped: pubtabnet_records(
            annotations, images=images, split=split, coords=coords, skipped=skipped
        ),
        out,
        annotations,
    )


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

    _write(
        lambda skipped: molecule_records(folder, labels=labels, skipped=skipped),
        out,
        labels or folder,
    )


@data_app.command("kern")
def data_kern(
    folder: Annotated[Path, typer.Argument(help="Folder of score images with kern files.")],
    out: OutFile,
) -> None:
    """Music: normalised **kern for each image, from the kern file of the same name."""
    from docvlm.finetune.datasets import kern_records

    _write(lambda skipped: kern_records(folder, skipped=skipped), out, folder)


Count = Annotated[int, typer.Option("--count", "-n", min=1, help="Images to make.")]
Seed = Annotated[int, typer.Option("--seed", help="Same seed, same images and records.")]
Noise = Annotated[
    float, typer.Option("--noise", min=0.0, help="Scan noise strength (0: clean drawings).")
]
OutDir = Annotated[Path, typer.Option("--out", "-o", help="Folder for images/ and train.jsonl.")]


def _synthesize(
    kind: str,
    read: Callable[[list[str]], tuple[list[str], list[str]]],
    origin: str,
    out: Path,
    count: int,
    seed: int,
    noise: float,
    **extra: Any,
) -> None:
    """Draw the sources ``read`` gives as (sources, their names), given the list to add
    left-out inputs to; exit 1 naming ``origin`` when no image is written."""
    from docvlm.finetune.synthetic import synthesize

    skipped: list[str] = []
    try:
        sources, names = read(skipped)
        if sources:
            written, more = synthesize(kind, sources, out, count, seed, noise, names=names, **extra)  # type: ignore[arg-type]
            skipped += more
    except DocVLMError as error:
        _fail(error)
        return
    for reason in skipped[:20]:
        err.print(f"left out: {reason}", markup=False, soft_wrap=True)
    if len(skipped) > 20:
        err.print(f"... and {len(skipped) - 20} more left out", markup=False)
    if not sources or not written:
        _fail(InputError(f"nothing drawn ({len(skipped)} left out)", source=origin))
    err.print(f"wrote {written} images and {out / 'train.jsonl'}", markup=False, soft_wrap=True)


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

    def read(_: list[str]) -> tuple[list[str], list[str]]:
        sources = read_smiles(smiles)
        return sources, [str(smiles)] * len(sources)

    _synthesize("molecules", read, str(smiles), out, count, seed, noise)


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
    from docvlm.finetune.synthetic import kern_file_excerpts

    def read(skipped: list[str]) -> tuple[list[str], list[str]]:
        if len(kern) == 1:  # a lone file's error is the command's error
            excerpts = kern_file_excerpts(kern[0], measures)
            return excerpts, [f"{kern[0]} excerpt {i + 1}" for i in range(len(excerpts))]
        sources, names = [], []
        for path in kern:
            try:
                excerpts = kern_file_excerpts(path, measures)
            except DocVLMError as error:
                skipped.append(str(error))
                continue
            sources += excerpts
            names += [f"{path} excerpt {i + 1}" for i in range(len(excerpts))]
        return sources, names

    _synthesize("music", read, ", ".join(map(str, kern)), out, count, seed, noise)


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

    from docvlm.finetune.datasets import pubtabnet_tables
    from docvlm.finetune.tables import random_table_html

    def read(skipped: list[str]) -> tuple[list[str], list[str]]:
        if source is not None:
            return pubtabnet_tables(source, skipped)
        tables = [random_table_html(random.Random(f"{seed}:table:{i}")) for i in range(count)]
        return tables, [f"random table {i + 1}" for i in range(count)]

    origin = str(source) if source is not None else "random tables"
    _synthesize("tables", read, origin, out, count, seed, noise, coords=coords)
