"""Fine-tuning a PaliGemma 2 checkpoint for a task (tables, molecules, music, text).

No public checkpoint reads tables, molecules or music, so making one is part of docvlm:
``finetune(options)`` trains the ``pt`` checkpoint on (image, target) pairs with the
task's prompt as prefix and the target as suffix (loss on the suffix only, as the paper
trains), and writes a checkpoint directory (safetensors + processor) that every docvlm
entry point loads. LoRA (peft) by default; ``lora_rank=0`` trains all text weights.

Data: JSON Lines, one record per example: ``{"image": "crops/a.png", "target": "..."}``
(image paths relative to the file). ``pubtabnet_records`` turns PubTabNet annotations
into such records.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from docvlm.errors import InputError, MissingDependencyError
from docvlm.regions import crop_square
from docvlm.render import to_rgb
from docvlm.settings import Settings
from docvlm.tasks import TASKS, TaskName
from parsers import Box

__all__ = ["FinetuneOptions", "FinetuneReport", "finetune", "pubtabnet_records", "read_examples"]


class FinetuneOptions(BaseModel):
    """What to train, on what, and how."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: TaskName = Field(description="task whose prompt prefixes every example")
    data: Path = Field(description="JSON Lines of {image, target}")
    output: Path = Field(description="directory for the fine-tuned checkpoint")
    base: str | None = Field(
        default=None,
        description="checkpoint to start from (default google/paligemma2-3b-pt-<task res>)",
    )
    epochs: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many steps")
    batch_size: int = Field(default=4, ge=1)
    learning_rate: float = Field(default=1e-4, gt=0)
    lora_rank: int = Field(default=16, ge=0, description="LoRA rank; 0 trains all text weights")
    seed: int = Field(default=0)

    def base_checkpoint(self) -> str:
        return self.base or f"google/paligemma2-3b-pt-{TASKS[self.task].resolution}"


class FinetuneReport(BaseModel):
    """What a run did (also written to ``training.json`` in the output)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    options: FinetuneOptions
    steps: int
    examples: int
    losses: list[float] = Field(description="training loss per step")
    output: Path


def read_examples(path: Path) -> list[tuple[Path, str]]:
    """(image path, target) pairs of a JSON Lines file; image paths relative to it."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            image, target = Path(record["image"]), str(record["target"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise InputError(
                f"line {number}: needs {{'image', 'target'}} ({error})", source=str(path)
            ) from error
        examples.append((image if image.is_absolute() else path.parent / image, target))
    if not examples:
        raise InputError("no examples", source=str(path))
    return examples


def pubtabnet_records(annotations: Path) -> Iterator[dict[str, str]]:
    """Training records from PubTabNet's JSON Lines: the structure tokens with each
    cell's tokens written in, the HTML the ``table`` task should produce."""
    for line in annotations.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        cells = iter(item["html"]["cells"])
        parts = []
        for token in item["html"]["structure"]["tokens"]:
            parts.append(token)
            if token in ("<td>", ">"):
                parts.append("".join(next(cells)["tokens"]))
        yield {"image": item["filename"], "target": "".join(parts)}


def _square(path: Path) -> Image.Image:
    with Image.open(path) as image:
        page = to_rgb(image.copy())
    return crop_square(page, Box(x0=0, y0=0, x1=page.width, y1=page.height)).image


def finetune(
    options: FinetuneOptions,
    settings: Settings | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> FinetuneReport:
    """Train and write the checkpoint; ``progress(step, loss)`` is called every step."""
    import torch

    from docvlm.engines.hf import load_model

    settings = settings or Settings()
    examples = read_examples(options.data)
    model, processor, device = load_model(options.base_checkpoint(), settings)
    random.seed(options.seed)
    torch.manual_seed(options.seed)
    model = _trainable(model, options.lora_rank)
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=options.learning_rate)
    spec = TASKS[options.task]
    losses: list[float] = []
    step = 0
    for _ in range(options.epochs):
        order = list(range(len(examples)))
        random.shuffle(order)
        for start in range(0, len(order), options.batch_size):
            batch = [examples[i] for i in order[start : start + options.batch_size]]
            inputs = processor(
                images=[_square(path) for path, _ in batch],
                text=["<image>" + spec.prompt] * len(batch),
                suffix=[target for _, target in batch],
                return_tensors="pt",
                padding="longest",
            ).to(device)
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
            loss = model(**inputs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss.item())
            if progress:
                progress(step, losses[-1])
            if options.max_steps and step >= options.max_steps:
                break
        if options.max_steps and step >= options.max_steps:
            break
    model.eval()
    if options.lora_rank:
        model = model.merge_and_unload()
    options.output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(options.output, safe_serialization=True)
    processor.save_pretrained(options.output)
    report = FinetuneReport(
        options=options, steps=step, examples=len(examples), losses=losses, output=options.output
    )
    (options.output / "training.json").write_text(report.model_dump_json(indent=2))
    return report


def _trainable(model: Any, rank: int) -> Any:
    """LoRA on the language model's attention and MLP, or all text weights (rank 0);
    the vision tower stays frozen either way."""
    for parameter in model.parameters():
        parameter.requires_grad = False
    if rank == 0:
        for parameter in model.model.language_model.parameters():
            parameter.requires_grad = True
        for parameter in model.model.multi_modal_projector.parameters():
            parameter.requires_grad = True
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:
        raise MissingDependencyError(
            "LoRA fine-tuning needs peft: pip install 'docvlm[train]'"
        ) from error
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        lora_dropout=0.0,
    )
    return get_peft_model(model, config)
