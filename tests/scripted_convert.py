"""``docvlm`` command line with a scripted engine (no model, no torch), for tests that run
real ``docvlm convert`` processes: ``python tests/scripted_convert.py convert ...``.

Every request answers ``a caption`` after ``DOCVLM_TEST_SECONDS`` (default 0.05) seconds,
so a test can kill or overlap runs between pages; loading the engine takes
``DOCVLM_TEST_LOAD_SECONDS`` (default 0). It runs as the ``docvlm`` script does (a bad
``DOCVLM_*`` setting is one line and its exit code).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import docvlm.client
from docvlm.engines import Request
from docvlm.testing import ScriptedEngine

SECONDS = float(os.environ.get("DOCVLM_TEST_SECONDS", "0.05"))
LOAD_SECONDS = float(os.environ.get("DOCVLM_TEST_LOAD_SECONDS", "0"))


def _answer(_request: Request) -> str:
    time.sleep(SECONDS)
    return "a caption"


class ScriptedDocVLM(docvlm.client.DocVLM):
    """``DocVLM`` whose every task runs on the scripted engine."""

    def __init__(self, settings: Any = None, **options: Any) -> None:
        options["engine_factory"] = _load
        super().__init__(settings, **options)


def _load(checkpoint: str, settings: Any) -> ScriptedEngine:
    time.sleep(LOAD_SECONDS)
    return ScriptedEngine(_answer, resolution=224, record=False)


docvlm.client.DocVLM = ScriptedDocVLM  # type: ignore[misc]

if __name__ == "__main__":
    from docvlm.cli import main

    sys.argv[0] = "docvlm"
    main()
