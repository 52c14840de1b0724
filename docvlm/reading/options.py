"""The reading options shared by the Python API, the CLI and the HTTP service.

Each option is declared once, here, with its help text and bounds; the CLI's flags and the
service's form fields take both from ``ReadOptions``, and the client's keywords carry the
same names, so the three surfaces cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DPI_RANGE", "MAX_NEW_TOKENS_RANGE", "ReadOptions", "form_schema", "option_help"]

DPI_RANGE = (36, 1200)
MAX_NEW_TOKENS_RANGE = (1, 65536)


class ReadOptions(BaseModel):
    """How the pages of one source are chosen and read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pages: str | None = Field(
        default=None, description="Pages to read, from 1: '1-3,7', '5-' (default: all)."
    )
    password: str | None = Field(default=None, description="Password of an encrypted PDF.")
    dpi: int | None = Field(
        default=None,
        ge=DPI_RANGE[0],
        le=DPI_RANGE[1],
        description="PDF rendering resolution (default 150).",
    )
    max_new_tokens: int | None = Field(
        default=None,
        ge=MAX_NEW_TOKENS_RANGE[0],
        le=MAX_NEW_TOKENS_RANGE[1],
        description="Longest answer (default: the task's).",
    )
    question: str | None = Field(default=None, description="The question for the ask task.")
    orient: bool = Field(
        default=True,
        description="Read each page turned upright and straightened where its orientation "
        "and skew are measured with confidence (off: read pages as they lie).",
    )


def option_help(name: str) -> str:
    """The help text of option ``name``, as every surface shows it."""
    description = ReadOptions.model_fields[name].description
    assert description is not None
    return description


def form_schema() -> dict[str, Any]:
    """The options as JSON Schema properties (the service's upload form)."""
    properties: dict[str, Any] = ReadOptions.model_json_schema()["properties"]
    return properties
