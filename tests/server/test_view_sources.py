"""Where ``docvlm view OUT`` looks for a relative source (docs/serve.md): under ``--root``,
then in the folder that holds OUT (a file's folder; for a folder output, the folder
containing it, where ``docvlm convert`` ran), never the working directory as such."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from PIL import Image
from typer.testing import CliRunner

from docvlm import DocVLM, Settings
from docvlm.archive.output import Output, open_sink
from docvlm.cli import app
from docvlm.server import FileArchive
from docvlm.server.archive import PageImageError
from docvlm.testing import ScriptedEngine

SETTINGS = Settings(device="cpu", render_timeout=None)


def test_a_relative_source_is_found_beside_a_file_and_beside_a_folder_output(
    make_pdf: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    (work / "scans").mkdir(parents=True)
    shutil.move(make_pdf(1), work / "scans" / "scan.pdf")
    monkeypatch.chdir(work)  # convert run in work/, naming its sources relative to it
    engine = ScriptedEngine(lambda request: "")
    with DocVLM(SETTINGS, checkpoint="s", engine_factory=lambda c, s: engine) as reader:
        (document,) = reader.convert_many([Path("scans/scan.pdf")], tasks=["text"], dpi=40)
    assert document.source == "scans/scan.pdf"
    (work / "out").mkdir()
    for target in (work / "out.jsonl", work / "out"):
        with open_sink(target) as sink:
            sink.write(document)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the viewer started somewhere else, without --root
    page = document.pages[0]
    for output in (work / "out.jsonl", work / "out"):
        png = FileArchive(Output.existing(output), SETTINGS).page_png(0, 1)
        assert Image.open(io.BytesIO(png)).size == (page.width, page.height), output
    shutil.move(work / "scans", work / "out" / "scans")  # inside the output folder itself
    with pytest.raises(PageImageError):
        FileArchive(Output.existing(work / "out"), SETTINGS).page_png(0, 1)
    found = FileArchive(Output.existing(work / "out"), SETTINGS, root=work / "out")
    assert Image.open(io.BytesIO(found.page_png(0, 1))).size == (page.width, page.height)


def test_view_help_says_where_sources_are_looked_for() -> None:
    result = CliRunner().invoke(app, ["view", "--help"], env={"COLUMNS": "300"})
    text = " ".join(result.output.replace("│", " ").split())
    assert "[default: none]" in text
    assert "for out/ the folder containing out/" in text
    assert "the working directory is not searched" in text
