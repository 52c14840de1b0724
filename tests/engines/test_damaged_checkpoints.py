"""A damaged checkpoint is one line naming the file (exit 5), never a loader's traceback;
a shard index may name only .safetensors files inside the checkpoint's folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docvlm import CheckpointUnavailableError, Settings
from docvlm.cli import app

pytest.importorskip("torch")

INDEX = "model.safetensors.index.json"


@pytest.fixture()
def page(tmp_path: Path) -> Path:
    from PIL import Image

    image = tmp_path / "page.png"
    Image.new("RGB", (64, 48), "white").save(image)
    return image


def _copy(checkpoint: Path, folder: Path) -> Path:
    shutil.copytree(checkpoint, folder)
    return folder


def _shard(checkpoint: Path, folder: Path) -> Path:
    """The checkpoint split into two safetensors shards with a transformers index."""
    from safetensors.torch import load_file, save_file

    folder = _copy(checkpoint, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    keys = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": keys[::2]}
    halves["model-00002-of-00002.safetensors"] = keys[1::2]
    weight_map = {}
    for name, chosen in halves.items():
        save_file({k: tensors[k] for k in chosen}, str(folder / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(chosen, name))
    (folder / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def _rename_shard(folder: Path, old: str, new: str) -> None:
    index = json.loads((folder / INDEX).read_text())
    index["weight_map"] = {k: (new if v == old else v) for k, v in index["weight_map"].items()}
    (folder / INDEX).write_text(json.dumps(index))


def _read(page: Path, checkpoint: Path, **env: str) -> tuple[int, list[str]]:
    args = ["read-text", str(page), "-c", str(checkpoint), "--device", "cpu"]
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.stderr.splitlines()


def test_a_garbage_weights_file_is_one_line(
    tiny_checkpoint: Path, tmp_path: Path, page: Path
) -> None:
    folder = _copy(tiny_checkpoint, tmp_path / "ckpt")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file, just garbage" * 40)
    code, lines = _read(page, folder)
    assert code == 5  # ExitCode.CRASHED: the model does not load
    assert lines == [
        f"error: {folder / 'model.safetensors'}: not a readable safetensors file "
        "(Error while deserializing header: header too large)"
    ]


def test_a_sharded_checkpoint_loads_the_same_weights(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import torch

    from docvlm.engines.hf import load_model

    folder = _shard(tiny_checkpoint, tmp_path / "sharded")
    whole, _, _ = load_model(str(tiny_checkpoint), Settings(device="cpu"))
    split, _, _ = load_model(str(folder), Settings(device="cpu"))
    expected = whole.state_dict()
    assert expected.keys() == split.state_dict().keys()
    assert all(torch.equal(t, expected[k]) for k, t in split.state_dict().items())


def test_a_shard_that_is_not_safetensors_is_refused(
    tiny_checkpoint: Path, tmp_path: Path, page: Path
) -> None:
    folder = _shard(tiny_checkpoint, tmp_path / "ckpt")
    (folder / "model-00002-of-00002.safetensors").rename(folder / "pytorch_model.bin")
    _rename_shard(folder, "model-00002-of-00002.safetensors", "pytorch_model.bin")
    code, lines = _read(page, folder)
    assert code == 5  # ExitCode.CRASHED: the model does not load
    assert lines == [
        f"error: {folder / INDEX}: shard 'pytorch_model.bin' is not a .safetensors file "
        "(docvlm loads safetensors only)"
    ]


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_a_shard_outside_the_folder_is_refused(
    tiny_checkpoint: Path, tmp_path: Path, page: Path, how: str
) -> None:
    from docvlm.engines.hf import load_model

    folder = _shard(tiny_checkpoint, tmp_path / "ckpt")
    outside = tmp_path / "outside.safetensors"  # a valid shard: only its place is wrong
    (folder / "model-00002-of-00002.safetensors").rename(outside)
    names = {"dotdot": "../outside.safetensors", "absolute": str(outside)}
    name = names.get(how, "link.safetensors")
    if how == "symlink":
        os.symlink(outside, folder / name)
    _rename_shard(folder, "model-00002-of-00002.safetensors", name)
    expected = f"{folder / INDEX}: shard {name!r} is outside the checkpoint's folder {folder}"
    with pytest.raises(CheckpointUnavailableError) as caught:
        load_model(str(folder), Settings(device="cpu"))
    assert str(caught.value) == expected
    assert _read(page, folder) == (5, [f"error: {expected}"])


@pytest.mark.parametrize("damaged", ["adapter_model.safetensors", "adapter_config.json"])
def test_a_garbage_adapter_is_one_line(
    tiny_checkpoint: Path, tmp_path: Path, page: Path, damaged: str
) -> None:
    pytest.importorskip("peft")
    from safetensors.torch import save_file
    from torch import zeros

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 2, "target_modules": ["q_proj"]})
    )
    save_file({"lora_A.weight": zeros(2, 2)}, str(adapter / "adapter_model.safetensors"))
    (adapter / damaged).write_bytes(b"garbage, not tensors" * 50)
    code, lines = _read(page, tiny_checkpoint, DOCVLM_ADAPTER=str(adapter))
    assert code == 5  # ExitCode.CRASHED: the model does not load
    cause = {
        "adapter_model.safetensors": "not a readable safetensors file "
        "(Error while deserializing header: header too large)",
        "adapter_config.json": "not a JSON adapter configuration "
        "(Expecting value: line 1 column 1 (char 0))",
    }[damaged]
    assert lines == [f"error: {adapter / damaged}: {cause}"]


def test_a_sharded_checkpoint_in_the_hub_cache_loads(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The Hugging Face cache keeps a snapshot's files as links into the model's
    ``blobs/`` (``snapshots/REV/x.safetensors -> ../../blobs/SHA``): they are the
    checkpoint's own shards, not files outside it."""
    from docvlm.engines.checkpoints import weight_files

    made = _shard(tiny_checkpoint, tmp_path / "made")
    model = tmp_path / "hub" / "models--google--paligemma2-3b-pt-896"
    snapshot = model / "snapshots" / "0123abc"
    (model / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for number, file in enumerate(sorted(made.iterdir())):
        blob = model / "blobs" / f"blob{number}"
        shutil.copy(file, blob)
        os.symlink(Path("../../blobs") / blob.name, snapshot / file.name)
    files = weight_files(snapshot)
    assert [f.name for f in files] == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    # a link from the snapshot to another model's blobs is still outside
    other = tmp_path / "hub" / "models--x--y" / "blobs"
    other.mkdir(parents=True)
    shutil.copy(made / "model-00002-of-00002.safetensors", other / "stray")
    (snapshot / "model-00002-of-00002.safetensors").unlink()
    os.symlink(other / "stray", snapshot / "model-00002-of-00002.safetensors")
    with pytest.raises(CheckpointUnavailableError, match="outside the checkpoint's folder"):
        weight_files(snapshot)
