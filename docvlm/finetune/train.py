"""The training loop: a PaliGemma 2 checkpoint fine-tuned on (image, target) pairs.

Each example is the task's prompt as prefix and the target as suffix, so the loss covers
the target only (``token_type_ids``/``labels`` of PaliGemma's processor), with the
recipe's label smoothing. ``max_steps`` is exact: the data is cycled epoch after epoch
(each epoch its own seeded shuffle) until that many optimizer steps are done, each step
``grad_accum`` forward passes. The learning rate warms up linearly and decays on a
cosine. LoRA (peft) by default, optionally over a 4-bit NF4 base (QLoRA, CUDA);
``lora_rank=0`` trains all weights. The output is a merged safetensors checkpoint
(or the adapter alone) that every docvlm entry point loads.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docvlm.engines.gemma2 import missing_final_cap, soft_cap
from docvlm.errors import InputError, MissingDependencyError, SettingsError
from docvlm.finetune.data import (
    Example,
    batch_order,
    check_examples,
    load_square,
    read_examples,
    split_held_out,
)
from docvlm.finetune.heldout import METRICS, generate_answers, score_held_out
from docvlm.finetune.options import (
    BASE_DEFAULTS_FILE,
    FinetuneOptions,
    FinetuneReport,
    Plan,
    carried_settings,
    plan_for,
)
from docvlm.finetune.state import latest_checkpoint, load_state, save_state, saved_state
from docvlm.settings import Settings
from docvlm.tasks import TASKS

__all__ = ["Progress", "finetune", "prepare"]

#: Non-reentrant checkpointing, said explicitly: torch asks for the choice (an error in
#: recent versions), and the reentrant variant loses gradients when no input requires them.
_CHECKPOINTING = {"use_reentrant": False}


@dataclass(frozen=True)
class Progress:
    """What the run reports after each step."""

    step: int
    total: int
    loss: float
    learning_rate: float
    held_out: float | None = None  # the task metric when it was just measured


@dataclass
class Prepared:
    """The data and settings of a run, before any model is loaded."""

    plan: Plan
    train: list[Example]
    held_out: list[Example]
    skipped: list[str]
    steps: int
    resolution: int | None = None  # the base checkpoint's input size, in px
    resume_from: Path | None = None  # the checkpoint a --resume run continues from


def prepare(options: FinetuneOptions, plan: Plan, tokenizer: Any) -> Prepared:
    """Check the data against the plan (no model needed)."""
    limit = plan.recipe.max_target_tokens

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    unread: list[str] = []
    examples, skipped = check_examples(read_examples(options.data, unread), count, limit)
    skipped = unread + skipped
    if options.eval_data is not None:
        unread = []
        held_out, more = check_examples(read_examples(options.eval_data, unread), count, limit)
        skipped += unread + more
        train = examples
    else:
        train, held_out = split_held_out(examples, options.eval_fraction, options.seed)
    if not train:
        reasons = "; ".join(skipped[:3])
        raise InputError(f"no usable training examples: {reasons}", source=str(options.data))
    if options.eval_every and not held_out:
        raise SettingsError("--eval-every needs held-out data: give --eval-data or --eval-fraction")
    if options.max_steps is not None:
        steps = options.max_steps
    else:
        per_epoch = -(-len(train) // plan.batch_size)
        steps = -(-per_epoch * plan.epochs // plan.grad_accum)
    return Prepared(plan, train, held_out, skipped, steps)


def finetune(
    options: FinetuneOptions,
    settings: Settings | None = None,
    progress: Callable[[Progress], None] | None = None,
    announce: Callable[[Plan, Prepared], None] | None = None,
) -> FinetuneReport:
    """Train and write the checkpoint. ``announce(plan, prepared)`` is called once before
    the first step (the CLI prints the settings there), ``progress`` after every step."""
    import torch

    from docvlm.engines.hf import load_model

    plan = plan_for(options)
    settings = _training_settings(options, plan, settings or Settings())
    torch.manual_seed(options.seed)
    model, processor, device = load_model(options.base_checkpoint(), settings)
    run = prepare(options, plan, processor.tokenizer)
    run.resolution = int(processor.image_processor.size["height"])  # as the engines read it
    checkpoints = options.output / "checkpoints"
    run_key = _run_key(options, run)
    if options.resume:
        run.resume_from = latest_checkpoint(checkpoints)
        if run.resume_from is not None:  # checked before any weight is loaded
            _check_same_run(saved_state(run.resume_from).get("run"), run_key, run.resume_from)
    if announce:
        announce(plan, run)
    model = _trainable(model, plan.lora_rank, options)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=run.plan.learning_rate, weight_decay=0.0)
    schedule = _schedule(run.steps, run.plan.warmup_fraction)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    step, losses, evals = 0, [], []
    if run.resume_from is not None:
        state = load_state(run.resume_from, model, optimizer)
        step, losses, evals = int(state["step"]), list(state["losses"]), list(state["evals"])
        scheduler.last_epoch = step
        for group in optimizer.param_groups:
            group["lr"] = run.plan.learning_rate * schedule(step)
    model.train()
    cap = missing_final_cap(model)  # Gemma 2 trained on capped logits; old transformers skip it
    spec = TASKS[options.task]
    order = batch_order(
        len(run.train), run.plan.batch_size, options.seed, step * run.plan.grad_accum
    )
    while step < run.steps:
        loss_sum = 0.0
        for _ in range(run.plan.grad_accum):
            batch = [run.train[i] for i in next(order)]
            inputs = processor(
                images=[load_square(e.image) for e in batch],
                text=["<image>" + spec.prompt] * len(batch),
                suffix=[e.target for e in batch],
                return_tensors="pt",
                padding="longest",
            ).to(device)
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
            labels = inputs.pop("labels")
            logits = soft_cap(model(**inputs).logits, cap)
            loss = _loss(logits, labels, run.plan.label_smoothing) / run.plan.grad_accum
            loss.backward()
            loss_sum += float(loss.item())
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        losses.append(loss_sum)
        held_out = None
        if run.held_out and (
            step == run.steps or (options.eval_every and step % options.eval_every == 0)
        ):
            answers = generate_answers(
                model,
                processor,
                device,
                options.task,
                [e.image for e in run.held_out],
                run.plan.batch_size,
                options.eval_max_new_tokens,
            )
            held_out = score_held_out(options.task, run.held_out, answers)
            evals.append({"step": float(step), METRICS[options.task][1]: held_out})
        if options.save_every and step % options.save_every == 0 and step < run.steps:
            record = {"losses": losses, "evals": evals, "run": run_key}
            save_state(checkpoints, step, model, optimizer, record, options.keep_checkpoints)
        if progress:
            rate = float(scheduler.get_last_lr()[0])
            progress(Progress(step, run.steps, loss_sum, rate, held_out))
    _write(model, processor, options, plan, settings)
    report = FinetuneReport(
        options=options,
        plan=run.plan,
        steps=step,
        examples=len(run.train),
        skipped=run.skipped,
        losses=losses,
        evals=evals,
        output=options.output,
    )
    (options.output / "training.json").write_text(report.model_dump_json(indent=2))
    shutil.rmtree(checkpoints, ignore_errors=True)  # the run finished: nothing to resume
    return report


#: Options that may differ between an interrupted run and its --resume (``output`` is
#: where the checkpoint was found, however it is spelled).
_RESUME_FREE = {
    "resume",
    "output",
    "save_every",
    "keep_checkpoints",
    "eval_every",
    "eval_max_new_tokens",
}


def _run_key(options: FinetuneOptions, run: Prepared) -> dict[str, Any]:
    """What a resumed run must share with the one it continues."""
    chosen = options.model_dump(mode="json", exclude=_RESUME_FREE)
    for name in ("data", "eval_data"):  # the same files, however they are spelled
        value = getattr(options, name)
        chosen[name] = str(value.resolve()) if value is not None else None
    base = options.base_checkpoint()
    chosen["base"] = str(Path(base).resolve()) if Path(base).exists() else base
    return chosen | {"steps": run.steps, "plan": run.plan.model_dump(mode="json")}


def _check_same_run(saved: dict[str, Any] | None, now: dict[str, Any], path: Path) -> None:
    if saved is None:  # written before runs were recorded
        return
    changed = sorted(  # only what the checkpoint recorded: options added later do not count
        name for name in saved if name != "plan" and saved[name] != now.get(name)
    )
    if not changed and saved.get("plan") != now.get("plan"):
        changed = ["the resolved training settings"]
    if changed:
        raise SettingsError(
            f"--resume continues {path} with the options it started with; these differ: "
            f"{', '.join(changed)} (rerun with the same options, or use a new --out)"
        )


def _training_settings(options: FinetuneOptions, plan: Plan, settings: Settings) -> Settings:
    """Settings for loading the base: precision and QLoRA checked against the device."""
    import torch

    cuda = settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available())
    if options.quantization == "nf4":
        if not cuda:
            raise SettingsError("QLoRA (quantization nf4) needs a CUDA device")
        if plan.lora_rank == 0:
            raise SettingsError("QLoRA trains LoRA adapters: use a lora rank above 0")
    if options.save == "adapter" and plan.lora_rank == 0:
        raise SettingsError(
            "--save adapter needs LoRA (a --lora-rank above 0); this run trains all weights"
        )
    if options.precision == "bfloat16" and not cuda:
        raise SettingsError("bfloat16 training needs a CUDA device; use float32 on the CPU")
    dtype = options.precision if options.precision != "auto" else "auto"
    return settings.model_copy(
        update={"dtype": dtype, "quantization": options.quantization, "adapter": None}
    )


def _schedule(steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = math.ceil(warmup_fraction * steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _loss(logits: Any, labels: Any, smoothing: float) -> Any:
    """Next-token cross-entropy over the suffix (labels -100 elsewhere), float32."""
    import torch.nn.functional as F

    shifted = logits[:, :-1].float()
    target = labels[:, 1:].to(shifted.device)
    return F.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]),
        target.reshape(-1),
        ignore_index=-100,
        label_smoothing=smoothing,
    )


def _trainable(model: Any, rank: int, options: FinetuneOptions) -> Any:
    """LoRA on the language model's attention and MLP (the rest frozen), or, with rank 0,
    every weight, the vision tower included, as the paper's transfers train (unless
    ``freeze_vision``: then the projector and the text weights)."""
    for parameter in model.parameters():
        parameter.requires_grad = rank == 0
    if options.freeze_vision:
        model.model.vision_tower.requires_grad_(False)
    if options.gradient_checkpointing:
        _checkpoint_activations(model)
    if rank == 0:
        return model
    try:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    except ImportError as error:
        raise MissingDependencyError(
            "LoRA fine-tuning needs peft: pip install 'docvlm[train]'"
        ) from error
    if options.quantization == "nf4":
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=options.gradient_checkpointing,
            gradient_checkpointing_kwargs=_CHECKPOINTING,
        )
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        lora_dropout=0.0,
    )
    return get_peft_model(model, config)


def _checkpoint_activations(model: Any) -> None:
    """Recompute activations in the backward pass. Newer transformers call it activation
    checkpointing (the old name warns that it goes in v6); the floor, 5.17, has only the
    old name."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=_CHECKPOINTING)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=_CHECKPOINTING)


def _write(
    model: Any, processor: Any, options: FinetuneOptions, plan: Plan, settings: Settings
) -> None:
    """A merged checkpoint, or the adapter (with the processor) alone, and the settings
    it was trained with for the next round (``carried_settings``)."""
    model.eval()
    out = options.output
    out.mkdir(parents=True, exist_ok=True)
    if plan.lora_rank == 0:
        model.save_pretrained(out, safe_serialization=True)
    elif options.save == "adapter":
        _save_adapter(model, out)
    elif options.quantization == "nf4":
        _merge_unquantized(model, out, options, settings)
    else:
        model.merge_and_unload().save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    carried, defaults = carried_settings(plan), out / BASE_DEFAULTS_FILE
    if carried:
        defaults.write_text(json.dumps(carried, indent=2) + "\n", encoding="utf-8")
    else:  # all the recipe's: a file left by an earlier run into this folder must not count
        defaults.unlink(missing_ok=True)


def _save_adapter(model: Any, out: Path) -> None:
    # the embeddings are not trained: without this peft looks the base up on the hub
    model.save_pretrained(out, safe_serialization=True, save_embedding_layers=False)


def _merge_unquantized(model: Any, out: Path, options: FinetuneOptions, settings: Settings) -> None:
    """QLoRA: the adapter merged into the base reloaded unquantized (4-bit weights cannot
    take the merge without losing it)."""
    from docvlm.engines.hf import load_model

    adapter = out / "adapter"
    _save_adapter(model, adapter)
    plain = settings.model_copy(
        update={"quantization": "none", "adapter": str(adapter), "merge_adapter": True}
    )
    merged, _, _ = load_model(options.base_checkpoint(), plain)
    merged.save_pretrained(out, safe_serialization=True)
    shutil.rmtree(adapter)


def read_report(output: Path) -> FinetuneReport:
    """The ``training.json`` of a finished run."""
    return FinetuneReport.model_validate(json.loads((output / "training.json").read_text()))
