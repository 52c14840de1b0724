"""``docvlm`` command line whose engine answers from a table, for tests that run real
``docvlm convert`` processes: ``python tests/answered_convert.py convert ...``.

``DOCVLM_TEST_ANSWERS`` names a JSON file ``{prompt: {side: answer}}``: a request gets the
answer written for its prompt and the side of its square image (the crop's size, so each
test source is told apart), or ``""`` when none was written. ``tables_converted`` does the
same in process (``answering_client``), and ``refusals`` reads what ``docvlm correct`` refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import docvlm.client
from docvlm.document import Document
from docvlm.engines import Request
from docvlm.testing import ScriptedEngine

ROOT = Path(__file__).resolve().parents[1]
Answers = dict[str, dict[str, str]]


def _answer(request: Request) -> str:
    answers: Answers = json.loads(Path(os.environ["DOCVLM_TEST_ANSWERS"]).read_text("utf-8"))
    return answers.get(request.prompt, {}).get(str(request.image.width), "")


def pubtabnet_tables(
    corpus: Path, folder: Path, count: int
) -> tuple[dict[str, str], dict[str, Any]]:
    """The first ``count`` PubTabNet examples copied into ``folder``: each crop's square
    side -> its table as the model writes it (cell boxes as coords), and name -> its
    annotation."""
    from PIL import Image

    from docvlm.finetune.datasets import pubtabnet_target

    examples = corpus / "tables/pubtabnet/examples"
    lines = (examples / "PubTabNet_Examples.jsonl").read_text(encoding="utf-8").splitlines()
    folder.mkdir(parents=True, exist_ok=True)
    by_side: dict[str, str] = {}
    items: dict[str, Any] = {}
    for line in lines:
        item = json.loads(line)
        with Image.open(examples / item["filename"]) as image:
            size = image.size
        if str(max(size)) in by_side:
            continue  # told apart by their side only
        shutil.copy(examples / item["filename"], folder)
        by_side[str(max(size))] = pubtabnet_target(item, size)
        items[item["filename"]] = item
        if len(items) == count:
            break
    return by_side, items


def answering_client(answers: Answers) -> docvlm.client.DocVLM:
    """In process, a client whose engine answers as ``convert``'s does, from ``answers``."""

    def respond(request: Request) -> str:
        return answers.get(request.prompt, {}).get(str(request.image.width), "")

    return docvlm.client.DocVLM(
        checkpoint="scripted",
        engine_factory=lambda checkpoint, settings: ScriptedEngine(respond, resolution=896),
    )


def tables_converted(corpus: Path, folder: Path, out: str, count: int = 2) -> list[Document]:
    """The first ``count`` PubTabNet crops (``pubtabnet_tables``, into ``folder/in``)
    converted in process into ``folder/OUT`` by an engine that writes each one's truth."""
    by_side, _ = pubtabnet_tables(corpus, folder / "in", count)
    client = answering_client({"table html": by_side})
    return list(client.convert_many([folder / "in"], tasks=["table"], out=folder / out))


def refusals(stderr: str) -> dict[int, str]:
    """``docvlm correct``'s refused lines, by the line number of the file they name."""
    refused = [line for line in stderr.splitlines() if ": refused: " in line]
    return {int(line.split(", line ")[1].split(":")[0]): line for line in refused}


def convert(args: list[str], answers: Answers, where: Path) -> subprocess.CompletedProcess[str]:
    """A real ``docvlm convert ARGS`` process answering from ``answers``."""
    file = where / "answers.json"
    file.write_text(json.dumps(answers), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DOCVLM_TEST_ANSWERS": str(file)}
    command = [sys.executable, __file__, "convert", *args, "--checkpoint", "scripted"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


class AnsweredDocVLM(docvlm.client.DocVLM):
    """``DocVLM`` whose every task runs on the answering engine."""

    def __init__(self, settings: Any = None, **options: Any) -> None:
        options["engine_factory"] = lambda checkpoint, settings: ScriptedEngine(
            _answer, resolution=896, record=False
        )
        super().__init__(settings, **options)


if __name__ == "__main__":
    # swapped only in the child process: a test importing this module keeps the real class
    docvlm.client.DocVLM = AnsweredDocVLM  # type: ignore[misc]
    from docvlm.cli import app

    app(prog_name="docvlm")
