"""Fine-tuning on CUDA: bfloat16 and QLoRA steps run and the merged output loads.

Skipped without a CUDA device (CI has none); run with ``pytest -m gpu``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]
TARGET = "<tr><td>1</td><td>2</td></tr>"


@pytest.mark.parametrize("qlora", [False, True])
def test_cuda_finetune_writes_a_checkpoint_that_reads(
    tiny_checkpoint: Path, corpus: Path, tmp_path: Path, qlora: bool
) -> None:
    pytest.importorskip("peft")
    if qlora:
        pytest.importorskip("bitsandbytes")
    from docvlm import DocVLM, Settings
    from docvlm.finetune import FinetuneOptions, finetune

    image = sorted((corpus / "tables/pubtabnet/examples").glob("*.png"))[0]
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"image": str(image), "target": TARGET}))
    options = FinetuneOptions(
        task="table",
        data=data,
        output=tmp_path / "out",
        base=str(tiny_checkpoint),
        max_steps=3,
        lora_rank=4,
        learning_rate=1e-2,
        precision="bfloat16",
        quantization="nf4" if qlora else "none",
        gradient_checkpointing=True,
    )
    report = finetune(options, Settings(device="cuda"))
    assert report.steps == 3 and all(loss == loss for loss in report.losses)  # no NaN
    (result,) = DocVLM(Settings(device="cuda"), checkpoint=str(tmp_path / "out")).read_table(
        image, max_new_tokens=8
    )
    assert result.checkpoint == str(tmp_path / "out")
