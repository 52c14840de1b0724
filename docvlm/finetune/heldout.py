"""Scoring the held-out set during training with the task's metric from ``docvlm.eval``.

The model answers each held-out image greedily (the task's prompt, the square image), and
the answers go through ``docvlm.eval.evaluate`` exactly as ``docvlm eval`` scores a
prediction file: TEDS for tables, exact SMILES match for molecules, SER for music, CER
for text.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from docvlm.finetune.data import Example, load_square
from docvlm.tasks import TASKS, TaskName

__all__ = ["METRICS", "generate_answers", "score_held_out"]

#: (record key, reported metric) per task.
METRICS: dict[TaskName, tuple[str, str]] = {
    "table": ("html", "teds"),
    "molecule": ("smiles", "smiles_exact"),
    "music": ("kern", "ser"),
    "text": ("text", "cer"),
}


def generate_answers(
    model: Any,
    processor: Any,
    device: str,
    task: TaskName,
    images: Sequence[Path],
    batch: int,
    max_new_tokens: int | None = None,
) -> list[str]:
    """Greedy answers of the model in training (switched to eval mode and back)."""
    import torch

    spec = TASKS[task]
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        for start in range(0, len(images), batch):
            chunk = [load_square(path) for path in images[start : start + batch]]
            inputs = processor(
                images=chunk,
                text=["<image>" + spec.prompt] * len(chunk),
                return_tensors="pt",
                padding="longest",
            ).to(device)
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
            with torch.no_grad():
                output = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens or spec.max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                )
            answers += processor.tokenizer.batch_decode(
                output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
            )
    finally:
        model.train(was_training)
    return answers


def score_held_out(task: TaskName, examples: Sequence[Example], answers: Sequence[str]) -> float:
    """The task's metric (percent) of ``answers`` against the examples' targets."""
    from docvlm.eval import evaluate

    key, metric = METRICS[task]
    with tempfile.TemporaryDirectory(prefix="docvlm-heldout-") as folder:
        predictions, truths = Path(folder) / "pred.jsonl", Path(folder) / "true.jsonl"
        predictions.write_text(
            "".join(json.dumps({"id": str(i), key: a}) + "\n" for i, a in enumerate(answers)),
            encoding="utf-8",
        )
        truths.write_text(
            "".join(
                json.dumps({"id": str(i), key: e.target}) + "\n" for i, e in enumerate(examples)
            ),
            encoding="utf-8",
        )
        report = evaluate(task, predictions, truths)  # type: ignore[arg-type]
    return report.metrics[metric]
