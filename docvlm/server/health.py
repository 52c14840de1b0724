"""``/healthz``, ``/v1/info`` and ``/v1/schema``: what the server is and how it is doing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

import docvlm
from docvlm.document import json_schema
from docvlm.server.state import Given
from docvlm.tasks import TASKS

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz")
def healthz(service: Given) -> dict[str, Any]:
    """Liveness, and how many conversions are running or waiting."""
    converter = service.converter
    return {
        "status": "ok",
        "mode": service.mode,
        "admitted": converter.admitted if converter else 0,
        "engines": sorted(converter.engines.loaded) if converter else [],
    }


@router.get("/v1/info")
def info(service: Given) -> dict[str, Any]:
    """What the viewer needs to know about this server."""
    return {
        "mode": service.mode,
        "version": docvlm.__version__,
        "tasks": list(TASKS),
        "max_upload_bytes": service.max_upload_bytes,
        "request_timeout": service.request_timeout if service.converter else None,
    }


@router.get("/v1/schema")
def schema() -> dict[str, Any]:
    """JSON Schema of the Document that /v1/convert answers with."""
    return json_schema("document")
