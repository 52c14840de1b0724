"""A checkpoint ``docvlm finetune`` writes carries the settings it was trained with, so
that the next round of the correction loop trains as the first did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docvlm import Settings
from docvlm.cli import app
from docvlm.finetune import FinetuneOptions, finetune
from docvlm.finetune.options import (
    BASE_DEFAULTS_FILE,
    carried_settings,
    make_plan,
    read_base_defaults,
)
from docvlm.finetune.recipes import RECIPES
from docvlm.finetune.tiny import TINY_TRAINING

pytest.importorskip("torch")
SETTINGS = ("learning_rate", "lora_rank", "batch_size", "grad_accum", "epochs")


@pytest.fixture(scope="module")
def trainable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from docvlm.finetune.tiny import write_trainable_checkpoint

    return write_trainable_checkpoint(tmp_path_factory.mktemp("tiny") / "trainable")


def _data(tmp_path: Path, corpus: Path) -> Path:
    """Two real PubTabNet crops with their own HTML, one line each."""
    folder = corpus / "tables/pubtabnet/examples"
    lines = (folder / "PubTabNet_Examples.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines[:2]]
    data = tmp_path / "train.jsonl"
    records = [
        {
            "image": str(folder / row["filename"]),
            "target": "".join(row["html"]["structure"]["tokens"][:6]),
        }
        for row in rows
    ]
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    return data


def _round(base: Path, data: Path, out: Path, *flags: str) -> tuple[dict[str, str], dict]:
    """Run ``docvlm finetune`` one step; return the printed (value, from) of each setting
    and the plan the run recorded in training.json."""
    args = ["finetune", "--task", "table", "--data", str(data), "--out", str(out)]
    args += ["--base", str(base), "--max-steps", "1", "--device", "cpu", *flags]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    printed = {}
    for line in result.stderr.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 3 and cells[0] in SETTINGS:
            printed[cells[0]] = f"{cells[1]} / {cells[2]}"
    plan = json.loads((out / "training.json").read_text())["plan"]
    return printed, plan


def test_the_second_round_trains_with_the_first_rounds_settings(
    trainable: Path, corpus: Path, tmp_path: Path
) -> None:
    data = _data(tmp_path, corpus)
    _, first = _round(trainable, data, tmp_path / "one", "--learning-rate", "0.002")
    assert first["learning_rate"] == 0.002 and first["lora_rank"] == TINY_TRAINING["lora_rank"]
    printed, second = _round(tmp_path / "one", data, tmp_path / "two", "--grad-accum", "2")
    for name in ("learning_rate", "lora_rank", "batch_size", "epochs"):
        assert second[name] == first[name], name
        assert second["sources"][name] == BASE_DEFAULTS_FILE
    assert printed["learning_rate"] == f"0.002 / {BASE_DEFAULTS_FILE}"
    assert printed["batch_size"] == f"{TINY_TRAINING['batch_size']} / {BASE_DEFAULTS_FILE}"
    assert printed["grad_accum"] == "2 / option"  # an option still wins, and is carried on
    # each output ships the base's file updated with the options given on the command line
    carried = json.loads((tmp_path / "one" / BASE_DEFAULTS_FILE).read_text())
    assert carried == TINY_TRAINING | {"learning_rate": 0.002}
    carried = json.loads((tmp_path / "two" / BASE_DEFAULTS_FILE).read_text())
    assert carried == TINY_TRAINING | {"learning_rate": 0.002, "grad_accum": 2}


def test_an_adapter_output_carries_its_settings_too(
    trainable: Path, corpus: Path, tmp_path: Path
) -> None:
    pytest.importorskip("peft")
    out = tmp_path / "lora"
    options = FinetuneOptions(
        task="table",
        data=_data(tmp_path, corpus),
        output=out,
        base=str(trainable),
        lora_rank=4,
        max_steps=1,
        save="adapter",
    )
    report = finetune(options, Settings(device="cpu"))
    assert (out / "adapter_config.json").is_file()
    assert read_base_defaults(out) == TINY_TRAINING | {"lora_rank": 4}
    again = make_plan(options.model_copy(update={"lora_rank": None}), read_base_defaults(out))
    assert again.model_dump(exclude={"sources"}) == report.plan.model_dump(exclude={"sources"})


def test_the_recipes_own_values_stay_derived_in_the_next_round(tmp_path: Path) -> None:
    options = FinetuneOptions(task="table", data=tmp_path / "d.jsonl", output=tmp_path / "o")
    assert carried_settings(make_plan(options, {})) == {}  # nothing to carry: no file
    first = make_plan(options.model_copy(update={"batch_size": 2}), {})
    assert carried_settings(first) == {"batch_size": 2}
    # round two at rank 0 takes the recipe's full rate, not the LoRA rate round one used
    second = make_plan(options.model_copy(update={"lora_rank": 0}), carried_settings(first))
    assert second.learning_rate == RECIPES["table"].learning_rate
    assert (second.batch_size, second.grad_accum) == (2, first.grad_accum)
