"""PaliGemma 2 through transformers: the engine that runs on any device.

Batched greedy generation with left padding and ``token_type_ids`` (prefix tokens attend
bidirectionally). The answer is decoded with special tokens dropped but ``<loc>``/``<seg>``
kept, since they are ordinary vocabulary that the parsers read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from docvlm.checkpoints import resolve_checkpoint
from docvlm.engines import Generation, Request
from docvlm.errors import CheckpointUnavailableError, MissingDependencyError
from docvlm.settings import Settings

if TYPE_CHECKING:
    import torch

__all__ = ["TransformersEngine", "pick_device", "pick_dtype"]


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


class TransformersEngine:
    """A loaded ``PaliGemmaForConditionalGeneration`` and its processor."""

    def __init__(self, checkpoint: str, model: Any, processor: Any, device: str) -> None:
        self._checkpoint = checkpoint
        self.model = model
        self.processor = processor
        self.device = device
        size = processor.image_processor.size
        self._resolution = int(size["height"])
        self._eos = processor.tokenizer.eos_token_id

    @classmethod
    def load(cls, checkpoint: str, settings: Settings) -> TransformersEngine:
        """Load from a hub id or directory: safetensors only, never remote code."""
        try:
            from transformers import PaliGemmaForConditionalGeneration, PaliGemmaProcessor
            from transformers.utils import logging as hf_logging
        except ImportError as error:
            raise MissingDependencyError(
                "the model engine needs torch and transformers: pip install docvlm"
            ) from error
        path = resolve_checkpoint(
            checkpoint, cache_dir=settings.cache_dir, offline=settings.offline
        )
        hf_logging.disable_progress_bar()  # docvlm draws its own progress
        device = pick_device(settings.device)
        dtype = pick_dtype(settings.dtype, device)
        try:
            processor = PaliGemmaProcessor.from_pretrained(path, local_files_only=True)
            model = PaliGemmaForConditionalGeneration.from_pretrained(
                path,
                dtype=dtype,
                use_safetensors=True,
                local_files_only=True,
                trust_remote_code=False,
            )
        except (OSError, ValueError, KeyError) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CheckpointUnavailableError(
                f"checkpoint {checkpoint!r} is not a PaliGemma checkpoint docvlm can load: {first}"
            ) from error
        model.to(device).eval()
        return cls(checkpoint, model, processor, device)

    @property
    def checkpoint(self) -> str:
        return self._checkpoint

    @property
    def resolution(self) -> int:
        return self._resolution

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """Greedy answers; requests with different budgets share one batch."""
        import torch

        if not requests:
            return []
        images = [r.image for r in requests]
        prompts = ["<image>" + r.prompt for r in requests]
        inputs = self.processor(images=images, text=prompts, return_tensors="pt", padding="longest")
        inputs.pop("labels", None)
        inputs = inputs.to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        budget = max(r.max_new_tokens for r in requests)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, max_new_tokens=budget, do_sample=False, num_beams=1
            )
        answers = output[:, inputs["input_ids"].shape[1] :].tolist()
        results = []
        for request, ids in zip(requests, answers, strict=True):
            ids = ids[: request.max_new_tokens]
            finished = self._eos in ids
            if finished:
                ids = ids[: ids.index(self._eos)]
            text = self.processor.tokenizer.decode(ids, skip_special_tokens=True)
            results.append(Generation(text=text, tokens=len(ids), finished=finished))
        return results
