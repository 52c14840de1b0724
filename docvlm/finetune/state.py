"""Resumable checkpoints: the trained weights, the optimizer and where the run stood.

``OUT/checkpoints/step-000120/`` holds ``trainable.safetensors`` (only the weights being
trained: LoRA adapters, or the text weights), ``optimizer.pt`` (AdamW moments, loaded
with ``weights_only=True``) and ``state.json`` (step, losses, held-out scores). The data
order is a function of the seed and the step, so a resumed run continues exactly where
the interrupted one stopped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["latest_checkpoint", "load_state", "save_state", "saved_state"]

_PREFIX = "step-"


def _trainable(model: Any) -> dict[str, Any]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def save_state(
    root: Path, step: int, model: Any, optimizer: Any, record: dict[str, Any], keep: int
) -> Path:
    """Write a checkpoint for ``step`` atomically and keep only the ``keep`` newest."""
    import torch
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{step:06d}"
    partial = root / f".{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    tensors = {n: p.detach().to("cpu").contiguous() for n, p in _trainable(model).items()}
    save_file(tensors, str(partial / "trainable.safetensors"))
    torch.save(optimizer.state_dict(), partial / "optimizer.pt")
    (partial / "state.json").write_text(json.dumps({"step": step, **record}), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)  # a crash mid-write leaves only a .partial directory behind
    for old in sorted(root.glob(f"{_PREFIX}*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root``, if any."""
    found = sorted(p for p in root.glob(f"{_PREFIX}*") if (p / "state.json").is_file())
    return found[-1] if found else None


def load_state(path: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    """Load a checkpoint into ``model`` and ``optimizer``; returns its ``state.json``."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(path / "trainable.safetensors"))
    params = _trainable(model)
    missing = sorted(set(params) - set(tensors))
    if missing:
        from docvlm.errors import InputError

        raise InputError(
            f"checkpoint does not match this run (no weights for {missing[0]})", source=str(path)
        )
    with torch.no_grad():
        for name, parameter in params.items():
            parameter.copy_(tensors[name].to(parameter.device, parameter.dtype))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    return saved_state(path)


def saved_state(path: Path) -> dict[str, Any]:
    """The ``state.json`` of a checkpoint: step, losses, held-out scores, the run's options."""
    state: dict[str, Any] = json.loads((path / "state.json").read_text(encoding="utf-8"))
    return state
