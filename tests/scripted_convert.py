"""``docvlm`` command line with a scripted engine (no model, no torch), for tests that run
real ``docvlm convert`` processes: ``python tests/scripted_convert.py convert ...``.

Every request answers ``a caption`` after ``DOCVLM_TEST_SECONDS`` (default 0.05) seconds,
so a test can kill or overlap runs between pages.
"""

from __future__ import annotations

import os
import time
from typing import Any

import docvlm.client
from docvlm.engines import Request
from docvlm.testing import ScriptedEngine

SECONDS = float(os.environ.get("DOCVLM_TEST_SECONDS", "0.05"))


def _answer(_request: Request) -> str:
    time.sleep(SECONDS)
    return "a caption"


class ScriptedDocVLM(docvlm.client.DocVLM):
    """``DocVLM`` whose every task runs on the scripted engine."""

    def __init__(self, settings: Any = None, **options: Any) -> None:
        options["engine_factory"] = lambda checkpoint, settings: ScriptedEngine(
            _answer, resolution=224, record=False
        )
        super().__init__(settings, **options)


docvlm.client.DocVLM = ScriptedDocVLM  # type: ignore[misc]

if __name__ == "__main__":
    from docvlm.cli import app

    app(prog_name="docvlm")
