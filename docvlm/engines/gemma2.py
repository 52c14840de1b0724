"""What Gemma 2 needs from transformers, made the same on every supported version.

Gemma 2 was trained with two soft-caps, ``cap * tanh(x / cap)``: on the attention scores
(``attn_logit_softcapping``, 50) and on the output logits (``final_logit_softcapping``,
30). transformers 5.17 (the lowest docvlm allows) honours neither by default for
PaliGemma 2: its Gemma 2 runs SDPA attention, which has no soft-cap and silently drops it,
and ``PaliGemmaForConditionalGeneration`` returns uncapped logits. Newer versions (5.25)
run Gemma 2 eager and cap the logits. Greedy tokens rarely change (tanh is monotonic),
log-probabilities, confidences and training losses do, by tenths of a nat.

docvlm defines the model as Gemma 2 does, on every version: ``eager_text_attention`` runs
the language model's attention eager (the vision tower keeps its faster SDPA: SigLIP has
no soft-cap), and where transformers leaves the final cap out docvlm applies it itself
(``missing_final_cap``). Whether the installed transformers caps is found by running it
once on a tiny model with a cap of 1: a behaviour test rather than a version number, so a
backport or a refactor cannot fool it; the answer is cached for the process.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "eager_text_attention",
    "missing_final_cap",
    "soft_cap",
    "transformers_caps_final_logits",
]


def soft_cap(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    """``cap * tanh(logits / cap)``, or ``logits`` unchanged when ``cap`` is None."""
    import torch

    if cap is None:
        return logits
    capped: torch.Tensor = torch.tanh(logits / cap) * cap
    return capped


@functools.cache
def transformers_caps_final_logits() -> bool:
    """True when the installed ``PaliGemmaForConditionalGeneration`` soft-caps its logits.

    Builds a two-token model whose output head gives logits of about 100 under a cap of
    1 and looks at what ``forward`` returns (a few milliseconds on a CPU).
    """
    import torch
    from transformers import (
        Gemma2Config,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        SiglipVisionConfig,
    )

    text = Gemma2Config(
        vocab_size=8,
        hidden_size=8,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=8,
        final_logit_softcapping=1.0,
        tie_word_embeddings=False,
    )
    vision = SiglipVisionConfig(
        hidden_size=8,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        image_size=28,
        patch_size=14,
    )
    config = PaliGemmaConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_index=7,
        vocab_size=8,
        projection_dim=8,
        hidden_size=8,
        tie_word_embeddings=False,
    )
    with torch.device("cpu"):
        model = PaliGemmaForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.lm_head.weight.fill_(100.0)
        model.model.language_model.norm.weight.fill_(0.0)  # Gemma scales by (1 + w)
        ids = torch.tensor([[1, 2]])
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    return bool(logits.abs().max() <= 1.0 + 1e-4)


def missing_final_cap(model: Any) -> float | None:
    """The final soft-cap docvlm must apply to this model's ``forward``/``generate``
    logits itself: the config's cap where transformers leaves it out, else None."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    cap = getattr(text, "final_logit_softcapping", None)
    if cap is None or transformers_caps_final_logits():
        return None
    return float(cap)


def eager_text_attention(model: Any) -> None:
    """Run the language model's attention eager (soft-capped), whatever the default.

    SDPA and FlashAttention have no score soft-cap; transformers 5.17 still picks SDPA
    for Gemma 2 and drops the cap without a word.
    """
    model.set_attn_implementation({"text_config": "eager"})
