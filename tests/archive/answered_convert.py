"""``docvlm`` command line whose engine answers from a table, for tests that run real
``docvlm convert`` processes: ``python tests/archive/answered_convert.py convert ...``.

``DOCVLM_TEST_ANSWERS`` names a JSON file ``{prompt: {side: answer}}``: a request gets the
answer written for its prompt and the side of its square image (the crop's size, so each
test source is told apart), or ``""`` when none was written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import docvlm.client
from docvlm.engines import Request
from docvlm.testing import ScriptedEngine

ANSWERS: dict[str, dict[str, str]] = json.loads(
    Path(os.environ["DOCVLM_TEST_ANSWERS"]).read_text(encoding="utf-8")
)


def _answer(request: Request) -> str:
    return ANSWERS.get(request.prompt, {}).get(str(request.image.width), "")


class AnsweredDocVLM(docvlm.client.DocVLM):
    """``DocVLM`` whose every task runs on the answering engine."""

    def __init__(self, settings: Any = None, **options: Any) -> None:
        options["engine_factory"] = lambda checkpoint, settings: ScriptedEngine(
            _answer, resolution=896, record=False
        )
        super().__init__(settings, **options)


docvlm.client.DocVLM = AnsweredDocVLM  # type: ignore[misc]

if __name__ == "__main__":
    from docvlm.cli import app

    app(prog_name="docvlm")
