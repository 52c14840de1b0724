"""Limits that keep a batch over an untrusted archive bounded in memory and time."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Limits"]


class Limits(BaseModel):
    """Input limits (see ``Settings`` for what each one does)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_page_pixels: int = Field(default=60_000_000, ge=1)
    max_pages: int = Field(default=20_000, ge=1)
    render_timeout: float | None = Field(default=120.0, gt=0)
    archive_max_members: int = Field(default=10_000, ge=1)
    archive_max_bytes: int = Field(default=2 * 1024**3, ge=1)
