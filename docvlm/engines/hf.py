"""PaliGemma 2 through transformers: loading, and the engine that runs anywhere.

``load_model`` resolves the checkpoint (safetensors only, never remote code), applies
optional 4/8-bit quantization and a LoRA adapter; ``load_for_inference`` adds the CPU
configuration of ``docvlm.engines.cpu`` (bf16 prepacked or int8 weight-only layers, threads).
``TransformersEngine`` runs batched greedy ``generate`` with left padding and
``token_type_ids`` (prefix tokens attend bidirectionally), each row stopping on its own
(EOS, its budget, a runaway loop). Answers are decoded with special tokens dropped but
``<loc>``/``<seg>`` kept, since they are ordinary vocabulary that the parsers read.
Gemma 2 runs as it was trained on every supported transformers: eager, soft-capped
attention and capped logits (``docvlm.engines.gemma2``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docvlm.engines.checkpoints import check_weights, resolve_checkpoint, weight_files
from docvlm.engines.gemma2 import eager_text_attention
from docvlm.errors import CheckpointUnavailableError, MissingDependencyError
from docvlm.reading.requests import Generation, Request
from docvlm.settings import Settings

if TYPE_CHECKING:
    import torch

__all__ = ["TransformersEngine", "load_for_inference", "load_model", "pick_device", "pick_dtype"]


def pick_device(setting: str) -> str:
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise CheckpointUnavailableError("device 'cuda' was asked for but CUDA is not available")
    return setting


def pick_dtype(setting: str, device: str) -> torch.dtype:
    import torch

    if setting == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    dtype: torch.dtype = getattr(torch, setting)
    return dtype


def _quantization(setting: str, dtype: torch.dtype) -> Any:
    if setting == "none":
        return None
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as error:
        raise MissingDependencyError(
            f"quantization={setting!r} needs bitsandbytes: pip install bitsandbytes"
        ) from error
    if setting == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def _with_adapter(model: Any, adapter: str, settings: Settings) -> Any:
    try:
        from peft import PeftModel
    except ImportError as error:
        raise MissingDependencyError(
            "LoRA adapters need peft: pip install 'docvlm[train]'"
        ) from error
    path = resolve_checkpoint(
        adapter, cache_dir=settings.cache_dir, offline=settings.offline, kind="adapter"
    )
    check_weights([path / "adapter_model.safetensors"])
    try:
        wrapped = PeftModel.from_pretrained(model, str(path), is_trainable=False)
    except (OSError, ValueError, KeyError, TypeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointUnavailableError(
            f"adapter {adapter!r} cannot be applied: {first}"
        ) from error
    return wrapped.merge_and_unload() if settings.merge_adapter else wrapped


def _load_unmapped(path: Path, dtype: torch.dtype) -> Any:
    """The model with each tensor read into memory on its own (``pread``), in ``dtype``.

    transformers memory-maps safetensors and, when the dtype matches, keeps the weights
    as views of the file: every page then counts in the process's memory, and a model
    whose layers are repacked afterwards holds both. Read tensor by tensor, the peak is
    the model plus one tensor.
    """
    from contextlib import ExitStack

    from safetensors import safe_open
    from transformers import (
        GenerationConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
    )

    config = PaliGemmaConfig.from_pretrained(path, local_files_only=True)
    with ExitStack() as files:
        state: dict[str, Any] = {}
        for file in weight_files(path):
            reader = files.enter_context(
                safe_open(str(file), framework="pt", device="cpu", backend="pread")
            )
            state.update({key: reader.get_slice(key) for key in reader.keys()})  # noqa: SIM118
        model = PaliGemmaForConditionalGeneration.from_pretrained(
            None, config=config, state_dict=state, dtype=dtype
        )
    # loaded from a state dict, the model would not know its directory: peft (and anything
    # else reading `name_or_path`) would then look up "None" on the hub
    model.config._name_or_path = str(path)
    model.name_or_path = str(path)
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(path, local_files_only=True)
    return model


def load_model(checkpoint: str, settings: Settings) -> tuple[Any, Any, str]:
    """(model, processor, device) for a hub id or directory."""
    try:
        from transformers import PaliGemmaForConditionalGeneration, PaliGemmaProcessor
        from transformers.utils import logging as hf_logging
    except ImportError as error:
        raise MissingDependencyError(
            "the model engine needs torch and transformers: pip install docvlm"
        ) from error
    path = resolve_checkpoint(checkpoint, cache_dir=settings.cache_dir, offline=settings.offline)
    hf_logging.disable_progress_bar()  # docvlm draws its own progress
    device = pick_device(settings.device)
    dtype = pick_dtype(settings.dtype, device)
    quantization = _quantization(settings.quantization, dtype)
    weights = weight_files(path)  # shards outside the folder refused before any is read
    check_weights(weights)
    try:
        processor = PaliGemmaProcessor.from_pretrained(path, local_files_only=True)
        if device == "cpu" and quantization is None and weights:
            model = _load_unmapped(path, dtype)
        else:
            model = PaliGemmaForConditionalGeneration.from_pretrained(
                path,
                dtype=dtype,
                use_safetensors=True,
                local_files_only=True,
                trust_remote_code=False,
                quantization_config=quantization,
                device_map=device if quantization is not None else None,
            )
    except (OSError, ValueError, KeyError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointUnavailableError(
            f"checkpoint {checkpoint!r} is not a PaliGemma checkpoint docvlm can load: {first}"
        ) from error
    eager_text_attention(model)  # Gemma 2's soft-capped attention on every transformers
    if settings.adapter:
        model = _with_adapter(model, settings.adapter, settings)
    if quantization is None:
        model.to(device)
    model.eval()
    return model, processor, device


def load_for_inference(checkpoint: str, settings: Settings) -> tuple[Any, Any, str]:
    """``load_model`` for reading: on the CPU, in the configuration ``docvlm.engines.cpu`` picks.

    The weights load directly in the plan's dtype (no transient fp32 copy); then the
    linear layers are prepacked (bf16) or quantized (int8) in place, one at a time. An
    adapter kept unmerged keeps plain layers (peft wraps them).
    """
    if pick_device(settings.device) != "cpu":
        return load_model(checkpoint, settings)
    from docvlm.engines.cpu import cpu_plan

    plan = cpu_plan(settings)
    if settings.adapter and not settings.merge_adapter:
        plan = dataclasses.replace(plan, quantization="none", packed=False)
    plain = settings.model_copy(update={"dtype": plan.dtype, "quantization": "none"})
    model, processor, device = load_model(checkpoint, plain)
    from docvlm.engines.linear import apply_plan

    apply_plan(model, plan)
    if plan.packed or plan.quantization != "none":
        _release_checkpoint_map(model)
    return model, processor, device


def _release_checkpoint_map(model: Any) -> None:
    """Copy the tensors the plan left alone out of the checkpoint's memory map.

    Weights loaded in the checkpoint's own dtype are views of the mmap'd safetensors
    file; once the linear layers are repacked, these few views (embeddings, norms) would
    keep the whole file mapped, and its pages counted in the process's memory.
    """
    import torch

    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.data = tensor.data.clone()


class TransformersEngine:
    """A loaded ``PaliGemmaForConditionalGeneration`` run through ``generate``.

    Each row of a batch stops on its own: at EOS, at its own ``max_new_tokens``, or when
    its last ``repetition_span`` tokens are one short cycle (``stop="repetition"``), so a
    runaway loop costs at most ``repetition_span`` tokens.
    """

    def __init__(
        self,
        checkpoint: str,
        model: Any,
        processor: Any,
        device: str,
        repetition_span: int | None = 512,
        *,
        batch_size: int | None = None,
    ) -> None:
        self._checkpoint = checkpoint
        self.repetition_span = repetition_span
        # generate() runs one padded batch: the client hands over every request of a run
        # at once, so they are cut into batches of this size (None: one batch)
        self.batch_size = batch_size
        self.model = model
        self.processor = processor
        self.device = device
        self._resolution = int(processor.image_processor.size["height"])
        self._eos = processor.tokenizer.eos_token_id

    @property
    def checkpoint(self) -> str:
        return self._checkpoint

    @property
    def resolution(self) -> int:
        return self._resolution

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """Greedy answers with per-token logprobs; different budgets share one batch."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        from docvlm.engines.gemma2 import missing_final_cap
        from docvlm.engines.stopping import ChosenLogprobs, RowStops

        if not requests:
            return []
        if self.batch_size and len(requests) > self.batch_size:
            size = self.batch_size
            chunks = [requests[i : i + size] for i in range(0, len(requests), size)]
            return [generation for chunk in chunks for generation in self.generate(chunk)]
        inputs = self.processor(
            images=[r.image for r in requests],
            text=["<image>" + r.prompt for r in requests],
            return_tensors="pt",
            padding="longest",
        )
        inputs.pop("labels", None)
        inputs = inputs.to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        prompt = int(inputs["input_ids"].shape[1])
        stops = RowStops(
            prompt, [r.max_new_tokens for r in requests], self._eos, self.repetition_span
        )
        chosen = ChosenLogprobs(missing_final_cap(self.model))
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=max(r.max_new_tokens for r in requests),
                do_sample=False,
                num_beams=1,
                logits_processor=LogitsProcessorList([chosen]),
                stopping_criteria=StoppingCriteriaList([stops]),
            )
        answers = output[:, prompt:].tolist()
        logprobs = torch.stack(chosen.steps, dim=1).tolist()  # [B, T]
        results = []
        for row, (ids, row_logprobs) in enumerate(zip(answers, logprobs, strict=True)):
            end = stops.ends[row]
            end = len(ids) if end is None else end
            text = self.processor.tokenizer.decode(ids[:end], skip_special_tokens=True)
            results.append(
                Generation(
                    text=text,
                    token_ids=tuple(ids[:end]),
                    logprobs=tuple(row_logprobs[:end]),
                    stop=stops.reasons[row],
                )
            )
        return results
