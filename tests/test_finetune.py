"""Fine-tuning: the tiny checkpoint learns to write a table, and the result loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docvlm import DocVLM, InputError, Settings
from docvlm.cli import app
from docvlm.finetune import FinetuneOptions, finetune, pubtabnet_records, read_examples

pytest.importorskip("torch")
TARGET = "<tr><td>1</td><td>2</td></tr>"


def _data(tmp_path: Path, corpus: Path) -> Path:
    images = sorted((corpus / "tables/pubtabnet/examples").glob("*.png"))[:2]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps({"image": str(p), "target": TARGET}) for p in images))
    return data


def test_full_finetune_learns_the_target(
    tiny_checkpoint: Path, corpus: Path, tmp_path: Path
) -> None:
    options = FinetuneOptions(
        task="table",
        data=_data(tmp_path, corpus),
        output=tmp_path / "out",
        base=str(tiny_checkpoint),
        epochs=100,
        max_steps=60,
        batch_size=2,
        learning_rate=1e-2,
        lora_rank=0,
    )
    report = finetune(options, Settings(device="cpu"))
    assert report.steps == 60 and report.losses[-1] < report.losses[0] / 5
    assert json.loads((tmp_path / "out" / "training.json").read_text())["steps"] == 60
    client = DocVLM(Settings(device="cpu"), checkpoint=str(tmp_path / "out"))
    image = sorted((corpus / "tables/pubtabnet/examples").glob("*.png"))[0]
    (result,) = client.read_table(image, max_new_tokens=30)
    assert result.raw == TARGET  # random weights learned to write the table
    assert result.status == "ok" and result.table is not None and result.table.shape == (1, 2)


def test_lora_finetune_through_the_cli(tiny_checkpoint: Path, corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    out = tmp_path / "lora"
    result = CliRunner().invoke(
        app,
        [
            "finetune",
            "--task",
            "table",
            "--data",
            str(_data(tmp_path, corpus)),
            "--out",
            str(out),
            "--base",
            str(tiny_checkpoint),
            "--max-steps",
            "3",
            "--lora-rank",
            "4",
            "--learning-rate",
            "0.01",
            "--batch-size",
            "2",
            "--device",
            "cpu",
            "--epochs",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 steps on 2 examples" in result.stderr
    assert (out / "model.safetensors").is_file()  # merged: a plain checkpoint
    assert DocVLM(Settings(device="cpu"), checkpoint=str(out)).read_table(
        sorted((corpus / "tables/pubtabnet/examples").glob("*.png"))[0], max_new_tokens=4
    )


def test_data_errors_and_pubtabnet_records(tmp_path: Path, corpus: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.png"}\n')
    with pytest.raises(InputError, match="line 1"):
        read_examples(bad)
    records = list(pubtabnet_records(corpus / "tables/pubtabnet/examples/PubTabNet_Examples.jsonl"))
    assert len(records) == 20
    assert records[0]["image"].endswith(".png") and records[0]["target"].startswith("<thead>")
