"""What every route is given: the archive, the converter and the limits, set once on the
app (``app.state.service``) and handed to an endpoint as the dependency ``Given``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from docvlm.server.archive import Archive
from docvlm.server.conversions import Converter

__all__ = ["Given", "Service"]


@dataclass(frozen=True)
class Service:
    """The app's parts; ``converter`` and ``uploads`` are None when it only views."""

    archive: Archive
    converter: Converter | None
    uploads: Path | None
    max_upload_bytes: int
    request_timeout: float

    @property
    def mode(self) -> str:
        return "serve" if self.converter else "view"


async def _service(request: Request) -> Service:
    # async: a plain function would cost every request a hop through the thread pool
    service: Service = request.app.state.service
    return service


Given = Annotated[Service, Depends(_service)]
