"""``docvlm info``: the configuration a model would run in here, without loading one.

Prints the device, dtype, quantization, threads and engine that ``Settings`` resolve to
on this machine, and what the CPU offers (``docvlm.engines.cpu``), so the choice is visible.
``--check`` loads the checkpoint and runs ``docvlm.engines.check`` (exit status 1 when
docvlm's engine differs from transformers).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Annotated, Optional

import typer

from docvlm.cli.common import EngineOption, settings_for
from docvlm.errors import ExitCode
from docvlm.settings import Settings

__all__ = ["RuntimeInfo", "info_command", "runtime_info"]


@dataclass(frozen=True)
class RuntimeInfo:
    """What docvlm would run a model with, and why."""

    device: str
    device_name: str
    dtype: str
    quantization: str
    threads: int | None
    engine: str
    linear_layers: str
    cpu_capability: str
    avx512_bf16: bool
    amx_bf16: bool
    torch: str
    transformers: str


def runtime_info(settings: Settings) -> RuntimeInfo:
    """Resolve ``settings`` (``auto`` values) the way the model loaders do."""
    import torch
    import transformers

    from docvlm.engines.cpu import cpu_features, cpu_plan
    from docvlm.engines.hf import pick_device, pick_dtype

    device = pick_device(settings.device)
    features = cpu_features()
    engine = settings.engine
    if engine == "auto":
        engine = "docvlm" if device == "cuda" else "transformers"
    if device == "cpu":
        plan = cpu_plan(settings, features)
        dtype: str = plan.dtype
        quantization: str = plan.quantization
        threads: int | None = plan.threads
        layers = "int8 weight-only (text decoder)" if quantization == "int8" else "plain"
        if plan.packed:
            layers += ", bf16 prepacked for oneDNN"
        name = features.name
    else:
        dtype = str(pick_dtype(settings.dtype, device)).removeprefix("torch.")
        quantization, threads, layers = settings.quantization, None, "plain"
        name = torch.cuda.get_device_name()
    return RuntimeInfo(
        device=device,
        device_name=name,
        dtype=dtype,
        quantization=quantization,
        threads=threads,
        engine=engine,
        linear_layers=layers,
        cpu_capability=features.capability,
        avx512_bf16=features.avx512_bf16,
        amx_bf16=features.amx_bf16,
        torch=torch.__version__,
        transformers=transformers.__version__,
    )


def info_command(
    device: Annotated[
        Optional[str],  # noqa: UP045 - typer reads the annotation at run time
        typer.Option("--device", help="auto, cpu or cuda (default: DOCVLM_DEVICE or auto)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Load the checkpoint, compare docvlm's engine with transformers on a "
            "synthetic page (tokens, log-probabilities), time prefill and decode.",
        ),
    ] = False,
    checkpoint: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--checkpoint", "-c", help="for --check (default: the text task's)"),
    ] = None,
    engine: EngineOption = None,
) -> None:
    """Show the device, dtype, quantization, threads and engine a model would run with."""
    settings = settings_for(device, engine)
    if check:
        from docvlm.engines.check import check_engine

        name = checkpoint or settings.checkpoint_for("text") or ""
        result = check_engine(name, settings)
        typer.echo(result.model_dump_json(indent=2) if as_json else _lines(result.model_dump()))
        raise typer.Exit(ExitCode.OK if result.agreement.passed else ExitCode.FAILED)
    info = runtime_info(settings)
    if as_json:
        typer.echo(json.dumps(asdict(info), indent=2))
        return
    for key, value in asdict(info).items():
        typer.echo(f"{key.replace('_', ' ')}: {value}")


def _lines(values: dict[str, object], indent: str = "") -> str:
    rows = []
    for key, value in values.items():
        label = indent + key.replace("_", " ")
        if isinstance(value, dict):
            rows += [f"{label}:", _lines(value, indent + "  ")]
        else:
            shown = f"{value:.4g}" if isinstance(value, float) else value
            rows.append(f"{label}: {shown}")
    return "\n".join(rows)
