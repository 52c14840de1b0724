"""The one-file commands read turned pages upright, and as they lie with ``--no-orient``,
as ``docvlm convert`` does (issue 29)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from docvlm.cli import app

runner = CliRunner()
TINY = ["--max-new-tokens", "4", "--device", "cpu", "--json"]
QUESTION = "what is the title?"


@pytest.fixture(scope="module")
def turned(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real scanned text page (its top half, at 150 dpi), turned a quarter
    counter-clockwise: fed sideways."""
    scan = Image.open(corpus / "pdfs/good_scans/ocrmypdf_linn.png").convert("RGB")
    scan = scan.resize((scan.width // 2, scan.height // 2), Image.Resampling.BOX)
    scan = scan.crop((0, 0, scan.width, 600))
    path = tmp_path_factory.mktemp("orient") / "turned.png"
    scan.rotate(90, expand=True).save(path)
    return path


def _invoke(args: list[str], checkpoint: Path) -> str:
    result = runner.invoke(app, [*args, "-c", str(checkpoint), *TINY])
    assert result.exit_code == 0, result.output
    return result.stdout


def _reading(results: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """What the model wrote and how sure it was: equal only when it saw the same crops."""
    return [(r["raw"], r["confidence"]) for r in results]


@pytest.mark.parametrize("command", ["read-text", "ask"])
def test_read_commands_orient_as_convert_does_and_not_with_no_orient(
    command: str, turned: Path, tiny_checkpoint: Path
) -> None:
    asking = command == "ask"
    read_args = [command, str(turned), *([QUESTION] if asking else [])]
    convert_args = ["convert", str(turned), *(["-t", "ask", "-q", QUESTION] if asking else [])]
    pages, readings = {}, {}
    for options in ([], ["--no-orient"]):
        (line,) = _invoke([*convert_args, *options], tiny_checkpoint).splitlines()
        (page,) = json.loads(line)["pages"]
        reading = _reading(json.loads(_invoke([*read_args, *options], tiny_checkpoint)))
        assert reading and reading == _reading(page["results"])  # the same crops as convert
        pages[bool(options)], readings[bool(options)] = page, reading
    # what orientation records: the quarter turn undone; nothing with --no-orient
    assert pages[False]["rotation"] == 90 and pages[False]["orientation_confidence"] >= 0.5
    assert (pages[True]["rotation"], pages[True]["skew"]) == (0, 0.0)
    assert pages[True]["orientation_confidence"] is None
    assert readings[True] != readings[False]  # the model was given the page as it lies
