"""Settings read once, at the edge, from ``DOCVLM_*`` environment variables.

Every field can also be passed to ``Settings(...)`` directly; ``DocVLM`` takes a Settings
object and passes it down, so no other module reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from docvlm.limits import Limits
from docvlm.tasks import TASKS, TaskName

__all__ = ["Device", "Dtype", "Settings"]

_LIMITS = Limits()  # the defaults live in Limits only

Device = Literal["auto", "cpu", "cuda"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]


class Settings(BaseSettings):
    """How docvlm finds and runs its models.

    Checkpoints are hub ids (``google/paligemma2-3b-mix-448``) or local directories.
    """

    model_config = SettingsConfigDict(env_prefix="DOCVLM_", extra="forbid", frozen=True)

    text_checkpoint: str | None = Field(default=None, description="checkpoint for `text` (OCR)")
    table_checkpoint: str | None = Field(default=None, description="checkpoint for `table`")
    molecule_checkpoint: str | None = Field(default=None, description="checkpoint for `molecule`")
    music_checkpoint: str | None = Field(default=None, description="checkpoint for `music`")
    layout_checkpoint: str | None = Field(default=None, description="checkpoint for `layout`")
    caption_checkpoint: str | None = Field(default=None, description="checkpoint for `caption`")
    ask_checkpoint: str | None = Field(default=None, description="checkpoint for `ask`")
    device: Device = Field(default="auto", description="auto picks cuda when available")
    dtype: Dtype = Field(default="auto", description="auto: bfloat16 on CUDA, float32 on the CPU")
    cache_dir: Path | None = Field(default=None, description="hub download cache directory")
    offline: bool = Field(default=False, description="never contact the hub; use the cache")
    batch_size: int = Field(
        default=8, ge=1, description="crops generated together (slots of the docvlm engine)"
    )
    engine: Literal["auto", "transformers", "docvlm"] = Field(
        default="auto",
        description="generation engine: docvlm's own (prefill once, static KV cache, CUDA "
        "graphs, continuous batching) or transformers' generate; auto: docvlm on CUDA",
    )
    quantization: Literal["none", "nf4", "int8"] = Field(
        default="none", description="load weights in 4-bit NF4 or 8-bit (bitsandbytes, CUDA)"
    )
    adapter: str | None = Field(
        default=None, description="LoRA adapter (peft directory or hub id) applied on load"
    )
    merge_adapter: bool = Field(default=True, description="merge the adapter into the weights")
    repetition_span: int | None = Field(
        default=512,
        ge=8,
        description="stop and flag a result whose last N tokens repeat one "
        "short cycle (docvlm engine); None: off",
    )
    dpi: int = Field(default=150, ge=36, le=1200, description="PDF rendering resolution")
    max_page_pixels: int = Field(
        default=_LIMITS.max_page_pixels,
        ge=1,
        description="pixels per page; PDFs render at "
        "a lower DPI to stay under it, bigger images are reduced, bombs refused",
    )
    max_pages: int = Field(default=_LIMITS.max_pages, ge=1, description="pages per document")
    render_timeout: float | None = Field(
        default=_LIMITS.render_timeout,
        gt=0,
        description="seconds one PDF page may take to "
        "render; the page is abandoned after that (PDFs then render in a worker process); "
        "None: no limit",
    )
    archive_max_members: int = Field(
        default=_LIMITS.archive_max_members, ge=1, description="files per zip/tar"
    )
    archive_max_bytes: int = Field(
        default=_LIMITS.archive_max_bytes, ge=1, description="uncompressed bytes per member"
    )

    def limits(self) -> Limits:
        """The input limits as one object for the rendering stage."""
        return Limits.model_validate({name: getattr(self, name) for name in Limits.model_fields})

    def checkpoint_for(self, task: TaskName) -> str | None:
        """The configured checkpoint of ``task``, else its public default (or None)."""
        configured: str | None = getattr(self, f"{task}_checkpoint")
        return configured or TASKS[task].default_checkpoint
