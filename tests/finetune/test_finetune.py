"""Fine-tuning: exact step counts, resume, held-out scores, outputs that load, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docvlm import DocVLM, InputError, Settings
from docvlm.cli import app
from docvlm.errors import SettingsError
from docvlm.finetune import FinetuneOptions, finetune, read_examples
from docvlm.finetune.data import batch_order, split_held_out
from docvlm.finetune.options import BASE_DEFAULTS_FILE, make_plan, read_base_defaults
from docvlm.finetune.recipes import RECIPES
from docvlm.finetune.train import Progress

pytest.importorskip("torch")
TARGET = "<tr><td>1</td><td>2</td></tr>"
CPU = Settings(device="cpu")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trainable tiny checkpoint (112 px): docvlm.testing's is scaled to test the
    engine (soft-capped logits, large scores), which makes training slow and erratic."""
    from docvlm.finetune.tiny import write_trainable_checkpoint

    return write_trainable_checkpoint(tmp_path_factory.mktemp("tiny") / "trainable")


def _images(corpus: Path, n: int = 2) -> list[Path]:
    return sorted((corpus / "tables/pubtabnet/examples").glob("*.png"))[:n]


def _data(tmp_path: Path, corpus: Path, n: int = 2, name: str = "train.jsonl") -> Path:
    data = tmp_path / name
    rows = [json.dumps({"image": str(p), "target": TARGET}) for p in _images(corpus, n)]
    data.write_text("\n".join(rows))
    return data


def _options(tiny: Path, data: Path, out: Path, **values: object) -> FinetuneOptions:
    settings = {"learning_rate": 3e-3, "lora_rank": 0, "batch_size": 1, "warmup_fraction": 0.0}
    return FinetuneOptions(
        task="table", data=data, output=out, base=str(tiny), **(settings | values)
    )


def test_batch_order_cycles_epochs_and_resumes_where_it_stopped() -> None:
    stream = batch_order(5, 2, seed=3)
    first = [next(stream) for _ in range(9)]  # 3 batches per epoch: 3 epochs
    for epoch in range(3):
        batches = first[3 * epoch : 3 * epoch + 3]
        assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    assert first[:3] != first[3:6]  # each epoch is its own shuffle
    resumed = batch_order(5, 2, seed=3, start=4)
    assert [next(resumed) for _ in range(5)] == first[4:]


def test_max_steps_is_exact_whatever_the_epochs(
    tiny_checkpoint: Path, corpus: Path, tmp_path: Path
) -> None:
    seen: list[Progress] = []
    options = _options(
        tiny_checkpoint,
        _data(tmp_path, corpus),
        tmp_path / "out",
        epochs=1,
        max_steps=5,
        grad_accum=2,
    )
    report = finetune(options, CPU, seen.append)
    # 2 examples, batch 1, 2 passes a step: 5 steps are 10 passes, five epochs
    assert report.steps == 5 and len(report.losses) == 5
    assert [p.step for p in seen] == [1, 2, 3, 4, 5] and seen[-1].total == 5
    assert seen[-1].learning_rate < seen[0].learning_rate  # cosine decay
    assert json.loads((tmp_path / "out" / "training.json").read_text())["steps"] == 5


def test_full_finetune_learns_and_the_result_loads(
    tiny_checkpoint: Path, corpus: Path, tmp_path: Path
) -> None:
    options = _options(
        tiny_checkpoint, _data(tmp_path, corpus), tmp_path / "out", max_steps=40, batch_size=2
    )
    report = finetune(options, CPU)
    assert report.losses[-1] < report.losses[0] / 5
    client = DocVLM(CPU, checkpoint=str(tmp_path / "out"))
    (result,) = client.read_table(_images(corpus)[0], max_new_tokens=30)
    assert result.raw == TARGET  # random weights learned to write the table
    assert result.table is not None and result.table.shape == (1, 2)


def test_resume_after_a_crash_gives_the_uninterrupted_weights(
    tiny_checkpoint: Path, corpus: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    data = _data(tmp_path, corpus)
    straight = finetune(_options(tiny_checkpoint, data, tmp_path / "a", max_steps=4), CPU)

    def crash(event: Progress) -> None:
        if event.step == 3:
            raise KeyboardInterrupt

    crashed = _options(tiny_checkpoint, data, tmp_path / "b", max_steps=4, save_every=2)
    with pytest.raises(KeyboardInterrupt):
        finetune(crashed, CPU, crash)
    assert [p.name for p in (tmp_path / "b/checkpoints").iterdir()] == ["step-000002"]
    for changed, named in (
        ({"freeze_vision": True}, "freeze_vision"),  # other trainable weights: no torch error
        ({"learning_rate": 1e-2}, "learning_rate"),
        ({"max_steps": 6}, "max_steps"),
    ):
        with pytest.raises(SettingsError, match=f"these differ: {named}"):
            finetune(crashed.model_copy(update={"resume": True, **changed}), CPU)
    starts: list[Path | None] = []
    # the same base and output, spelled another way: the same run
    respelled = tiny_checkpoint.parent / ".." / tiny_checkpoint.parent.name / tiny_checkpoint.name
    same = {"resume": True, "base": str(respelled), "output": tmp_path / "b" / ".." / "b"}
    resumed = finetune(
        crashed.model_copy(update=same),
        CPU,
        announce=lambda plan, run: starts.append(run.resume_from),
    )
    assert [s.resolve() for s in starts if s] == [tmp_path / "b/checkpoints/step-000002"]
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)
    a = load_file(str(tmp_path / "a/model.safetensors"))
    b = load_file(str(tmp_path / "b/model.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k] - b[k]).abs().max() < 1e-5 for k in a)
    assert not (tmp_path / "b/checkpoints").exists()  # finished: nothing left to resume


def test_adapter_output_loads_and_answers_as_the_merged_one(
    tiny_checkpoint: Path, corpus: Path, tmp_path: Path
) -> None:
    pytest.importorskip("peft")
    data = _data(tmp_path, corpus)
    settings = {"lora_rank": 4, "max_steps": 6, "learning_rate": 2e-2}
    finetune(_options(tiny_checkpoint, data, tmp_path / "merged", **settings), CPU)
    finetune(_options(tiny_checkpoint, data, tmp_path / "lora", save="adapter", **settings), CPU)
    assert (tmp_path / "lora/adapter_config.json").is_file()
    assert not (tmp_path / "lora/model.safetensors").exists()
    image = _images(corpus)[0]
    merged = DocVLM(CPU, checkpoint=str(tmp_path / "merged")).read_table(image, max_new_tokens=12)
    with_adapter = Settings(device="cpu", adapter=str(tmp_path / "lora"))
    adapted = DocVLM(with_adapter, checkpoint=str(tiny_checkpoint)).read_table(
        image, max_new_tokens=12
    )
    plain = DocVLM(CPU, checkpoint=str(tiny_checkpoint)).read_table(image, max_new_tokens=12)
    assert adapted[0].raw == merged[0].raw != plain[0].raw


def test_held_out_scores_are_the_task_metric_of_the_saved_model(
    tiny_checkpoint: Path, corpus: Path, tmp_path: Path
) -> None:
    from docvlm.eval import teds

    held = tmp_path / "held.jsonl"
    image = _images(corpus, 3)[2]
    held.write_text(json.dumps({"image": str(image), "target": TARGET}) + "\n")
    options = _options(
        tiny_checkpoint,
        _data(tmp_path, corpus),
        tmp_path / "out",
        max_steps=4,
        eval_data=held,
        eval_every=2,
        eval_max_new_tokens=30,
    )
    report = finetune(options, CPU)
    assert [e["step"] for e in report.evals] == [2.0, 4.0]
    (answer,) = DocVLM(CPU, checkpoint=str(tmp_path / "out")).read_table(image, max_new_tokens=30)
    expected = 100 * teds(
        f"<html><body><table>{answer.raw}</table></body></html>",
        f"<html><body><table>{TARGET}</table></body></html>",
    )
    assert report.evals[-1]["teds"] == pytest.approx(expected)


def test_plan_takes_options_then_the_checkpoint_then_the_recipe(tmp_path: Path) -> None:
    (tmp_path / BASE_DEFAULTS_FILE).write_text('{"learning_rate": 0.5, "lora_rank": 0}')
    options = FinetuneOptions(
        task="molecule",
        data=tmp_path / "d.jsonl",
        output=tmp_path,
        base=str(tmp_path),
        lora_rank=8,
    )
    plan = make_plan(options, read_base_defaults(tmp_path))
    assert plan.lora_rank == 8 and plan.sources["lora_rank"] == "option"
    assert plan.learning_rate == 0.5 and plan.sources["learning_rate"] == BASE_DEFAULTS_FILE
    assert plan.label_smoothing == RECIPES["molecule"].label_smoothing
    assert plan.sources["label_smoothing"] == "recipe"
    printed = {name: source for name, _, source in plan.rows()}
    assert printed["resolution"] == "recipe (paper)"
    assert printed["label_smoothing"] == "recipe (docvlm's choice)"
    assert printed["learning_rate"] == BASE_DEFAULTS_FILE
    assert plan.recipe.resolution == 448 and plan.recipe.max_target_tokens == 256
    (tmp_path / BASE_DEFAULTS_FILE).write_text('{"learning_rat": 1}')
    with pytest.raises(InputError, match="learning_rat"):
        read_base_defaults(tmp_path)


def test_bad_data_is_named_and_left_out(
    tiny_checkpoint: Path, corpus: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.png"}\n')
    with pytest.raises(InputError, match="line 1"):
        read_examples(bad)
    data = _data(tmp_path, corpus, n=1)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with data.open("a") as handle:
        handle.write("\n" + json.dumps({"image": "broken.png", "target": TARGET}))
        handle.write("\n" + json.dumps({"image": str(_images(corpus)[0]), "target": "x" * 5000}))
        handle.write("\n{truncated")
    report = finetune(_options(tiny_checkpoint, data, tmp_path / "out", max_steps=1), CPU)
    assert report.examples == 1 and len(report.skipped) == 3
    assert report.skipped[0].startswith(f"{data}: line 4: not JSON")
    assert "broken.png: cannot read the image" in report.skipped[1]
    assert "5000 tokens, the task allows 4096" in report.skipped[2]
    only_bad = tmp_path / "only_bad.jsonl"
    only_bad.write_text(json.dumps({"image": "broken.png", "target": TARGET}))
    with pytest.raises(InputError, match="no usable training examples"):
        finetune(_options(tiny_checkpoint, only_bad, tmp_path / "x", max_steps=1), CPU)


@pytest.mark.parametrize(
    ("values", "message"),
    [({"quantization": "nf4"}, "QLoRA"), ({"precision": "bfloat16"}, "bfloat16 training")],
)
def test_cuda_only_options_are_refused_on_the_cpu(
    tiny_checkpoint: Path, tmp_path: Path, values: dict[str, str], message: str
) -> None:
    options = FinetuneOptions(
        task="table",
        data=tmp_path / "d.jsonl",
        output=tmp_path / "o",
        base=str(tiny_checkpoint),
        **values,
    )
    with pytest.raises(SettingsError, match=message):
        finetune(options, CPU)


def test_settings_that_cannot_work_are_refused(
    tiny_checkpoint: Path, corpus: Path, tmp_path: Path
) -> None:
    data = _data(tmp_path, corpus)
    adapter = _options(tiny_checkpoint, data, tmp_path / "a", save="adapter", max_steps=1)
    with pytest.raises(SettingsError, match="--save adapter needs LoRA"):
        finetune(adapter, CPU)  # the tiny trains all weights: there is no adapter to save
    blind = _options(tiny_checkpoint, data, tmp_path / "b", eval_every=1, max_steps=1)
    with pytest.raises(SettingsError, match="--eval-every needs held-out data"):
        finetune(blind, CPU)


def test_interrupt_says_what_resume_would_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    from docvlm.cli.finetune import _interrupted

    options = FinetuneOptions(task="table", data=tmp_path / "d", output=tmp_path, save_every=5)
    with pytest.raises(typer.Exit) as stopped:
        _interrupted(options)
    assert stopped.value.exit_code == 130
    assert "no checkpoint was written yet" in capsys.readouterr().err
    (tmp_path / "checkpoints/step-000005").mkdir(parents=True)
    (tmp_path / "checkpoints/step-000005/state.json").write_text("{}")
    with pytest.raises(typer.Exit):
        _interrupted(options)
    err = capsys.readouterr().err
    assert f"{tmp_path / 'checkpoints/step-000005'}: rerun the same command with --resume" in err


def test_split_held_out_keeps_both_sides() -> None:
    from docvlm.finetune.data import Example

    examples = [Example(Path(f"{i}.png"), str(i)) for i in range(10)]
    train, held = split_held_out(examples, 0.2, seed=1)
    assert len(held) == 2 and len(train) == 8 and not set(train) & set(held)
    assert split_held_out(examples, 0.2, seed=1) == (train, held)


def test_cli_prints_the_settings_and_where_they_come_from(
    tiny_checkpoint: Path, corpus: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "finetune",
            "--task",
            "table",
            "--data",
            str(_data(tmp_path, corpus)),
            "--out",
            str(tmp_path / "out"),
            "--base",
            str(tiny_checkpoint),
            "--max-steps",
            "2",
            "--lora-rank",
            "0",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "112 px, white square" in result.stderr  # the base's size, not the recipe's
    assert "base checkpoint (paper: 896)" in result.stderr
    assert "docvlm_training.json" in result.stderr  # the tiny checkpoint's own rate
    assert "2 steps on 2 examples" in result.stderr
    assert (tmp_path / "out/model.safetensors").is_file()


def test_freeze_vision_trains_the_text_weights_only(
    tiny_checkpoint: Path, corpus: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "out"
    options = _options(
        tiny_checkpoint, _data(tmp_path, corpus), out, max_steps=2, freeze_vision=True
    )
    report = finetune(options, CPU)
    assert ("lora_rank", "0 (projector and text weights)", "option") in report.plan.rows()
    base = load_file(tiny_checkpoint / "model.safetensors")
    trained = load_file(out / "model.safetensors")
    assert base.keys() == trained.keys()
    changed = {name for name in base if not base[name].equal(trained[name])}
    vision = {name for name in base if "vision_tower." in name}
    assert vision and not changed & vision
    assert any("language_model." in name for name in changed)
    assert any("multi_modal_projector." in name for name in changed)


@pytest.mark.parametrize("rank", [0, 4])
def test_gradient_checkpointing_says_use_reentrant(
    tiny_checkpoint: Path,
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rank: int,
) -> None:
    """torch warns (and from 2.9 on some builds raises) when checkpointing leaves
    ``use_reentrant`` unsaid; warnings are errors here, so one step shows it. The call is
    transformers' current one: ``gradient_checkpointing_enable`` warns where
    ``activation_checkpointing_enable`` exists (not in 5.17, the floor)."""
    import warnings

    from transformers import PreTrainedModel

    asked: list[object] = []
    current = hasattr(PreTrainedModel, "activation_checkpointing_enable")
    name = "activation_checkpointing_enable" if current else "gradient_checkpointing_enable"
    enable = getattr(PreTrainedModel, name)

    def spy(self: PreTrainedModel, *args: object, **kwargs: object) -> None:
        asked.append(kwargs.get(name.replace("enable", "kwargs")))
        enable(self, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, name, spy)
    options = _options(
        tiny_checkpoint,
        _data(tmp_path, corpus),
        tmp_path / "out",
        max_steps=1,
        lora_rank=rank,
        gradient_checkpointing=True,
        save="adapter" if rank else "merged",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = finetune(options, CPU)
    assert report.steps == 1 and report.losses[0] > 0
    assert asked == [{"use_reentrant": False}]
    assert not [w for w in caught if "gradient_checkpointing_enable" in str(w.message)]


@pytest.mark.parametrize(
    ("flags", "variables", "hint", "code"),
    [
        (["--task", "caption"], {}, "--task", 2),
        (["--label-smoothing", "1.5"], {}, "--label-smoothing", 2),
        (["--eval-fraction", "1"], {}, "--eval-fraction", 2),
        (["--save", "both"], {}, "--save", 2),
        ([], {"DOCVLM_DTYPE": "float8"}, "bad setting DOCVLM_DTYPE='float8'", 2),
    ],
)
def test_cli_refuses_a_bad_flag_naming_it_before_loading_anything(
    tmp_path: Path, flags: list[str], variables: dict[str, str], hint: str, code: int
) -> None:
    base = ["finetune", "--task", "table", "--data", str(tmp_path / "d.jsonl")]
    base += ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*base, *flags], env=variables)
    assert result.exit_code == code, result.output
    assert hint in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
