"""Settings read once, at the edge, from ``DOCVLM_*`` environment variables.

Every field can also be passed to ``Settings(...)`` directly; ``DocVLM`` takes a Settings
object and passes it down, so no other module reads the environment.
"""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from docvlm.errors import SettingsError
from docvlm.tasks import TASKS, TaskName

__all__ = ["Device", "Dtype", "EngineName", "Limits", "Settings"]


class Limits(BaseModel):
    """Limits that keep a batch over an untrusted archive bounded in memory and time
    (``Settings`` says what each one does)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_page_pixels: int = Field(default=60_000_000, ge=1)
    max_pages: int = Field(default=20_000, ge=1)
    render_timeout: float | None = Field(default=120.0, gt=0)
    archive_max_members: int = Field(default=10_000, ge=1)
    archive_max_bytes: int = Field(default=2 * 1024**3, ge=1)


_LIMITS = Limits()  # the defaults live in Limits only

Device = Literal["auto", "cpu", "cuda"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
#: The generation engines (``docvlm.engines.ENGINES`` maps each to its factory).
EngineName = Literal["auto", "docvlm", "transformers"]


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
    dtype: Dtype = Field(
        default="auto",
        description="auto: bfloat16 on CUDA; for reading on the CPU, bfloat16 where the CPU "
        "has native bf16 (AMX or AVX-512 BF16), else float32 (fine-tuning: float32)",
    )
    cache_dir: Path | None = Field(default=None, description="hub download cache directory")
    offline: bool = Field(default=False, description="never contact the hub; use the cache")
    batch_size: int = Field(
        default=8, ge=1, description="crops generated together (slots of the docvlm engine)"
    )
    engine: EngineName = Field(
        default="auto",
        description="generation engine: docvlm's own (prefill once, static KV cache, CUDA "
        "graphs, continuous batching) or transformers' generate; auto: docvlm on CUDA",
    )
    quantization: Literal["none", "nf4", "int8"] = Field(
        default="none",
        description="load weights in 4-bit NF4 or 8-bit (bitsandbytes, CUDA); on the CPU, "
        "int8 is weight-only int8 for the text decoder (torch's own kernels)",
    )
    cpu_threads: int | None = Field(
        default=None, ge=1, description="torch threads on the CPU (None: one per core)"
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

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SettingsError(_one_line(error, values)) from None

    @field_validator("*", mode="before")
    @classmethod
    def _none_word(cls, value: Any, info: ValidationInfo) -> Any:
        """``none`` (or an empty value) means None for a field that may be None."""
        if isinstance(value, str) and value.strip().lower() in ("none", "null", ""):
            field = cls.model_fields[info.field_name or ""]
            if field.annotation is not None and _optional(field.annotation):
                return None
        return value

    def limits(self) -> Limits:
        """The input limits as one object for the rendering stage."""
        return Limits.model_validate({name: getattr(self, name) for name in Limits.model_fields})

    def checkpoint_for(self, task: TaskName) -> str | None:
        """The configured checkpoint of ``task``, else its public default (or None)."""
        configured: str | None = getattr(self, f"{task}_checkpoint")
        return configured or TASKS[task].default_checkpoint


def _optional(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)


def _one_line(error: ValidationError, given: dict[str, Any]) -> str:
    """The first problem, naming the variable or keyword it came from."""
    problem = error.errors()[0]
    name = str(problem["loc"][0]) if problem["loc"] else "settings"
    variable = f"DOCVLM_{name.upper()}"
    if name not in given and variable in os.environ:
        where = f"{variable}={os.environ[variable]!r}"
    else:
        where = f"{name}={given[name]!r}" if name in given else name
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"bad setting {where}: {problem['msg']}{more}"
