"""``docvlm view OUT --export DIR``: each page as a PNG with its boxes drawn where the
record says, for people who check results without a browser."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from docvlm import DocVLM, Settings
from docvlm.archive.pipeline import Options
from docvlm.archive.runner import run_job
from docvlm.cli import app
from docvlm.engines import Request
from docvlm.formats.pictures import COLOURS
from docvlm.testing import ScriptedEngine
from tests.formats.format_pages import SIDE, TWO_COLUMNS, _draw, model_output

runner = CliRunner()


def test_export_writes_each_page_with_its_line_boxes(tmp_path: Path) -> None:
    scan = tmp_path / "two-columns.png"
    _draw(TWO_COLUMNS).save(scan)
    blank = tmp_path / "other.png"
    Image.new("RGB", (SIDE, SIDE), "white").save(blank)

    def answer(request: Request) -> str:
        return model_output(TWO_COLUMNS)

    engine = ScriptedEngine(answer, resolution=SIDE)
    out = tmp_path / "out.jsonl"
    with DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="scripted") as client:
        run_job(client.models, [scan], Options(tasks=("text",), dpi=150), out)
    Path(tmp_path / "gone.png").write_bytes(blank.read_bytes())
    with DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="scripted") as client:
        run_job(client.models, [tmp_path / "gone.png"], Options(tasks=("text",)), out)
    (tmp_path / "gone.png").unlink()  # its page cannot be redrawn: named, the rest written

    result = runner.invoke(app, ["view", str(out), "--export", str(tmp_path / "pictures")])
    assert result.exit_code == 1, result.output
    assert "gone.png, page 1" in result.stderr
    pictures = sorted((tmp_path / "pictures").rglob("*.png"))
    assert [p.relative_to(tmp_path / "pictures").as_posix() for p in pictures] == [
        "0001-two-columns/page-0001.png"
    ]
    picture = Image.open(pictures[0]).convert("RGB")
    assert picture.size == (SIDE, SIDE)
    colour = COLOURS["text"]
    for box, _ in TWO_COLUMNS:  # each line's own box: its bottom edge, at its middle
        x = int(box.x0 + box.x1) // 2
        edge = [picture.getpixel((x, y)) for y in range(int(box.y1) - 3, int(box.y1) + 4)]
        assert colour in edge, (box, edge)
    inside = picture.getpixel((int(LINE_GAP_X), 600))  # the gutter between the columns
    assert inside == (255, 255, 255)


LINE_GAP_X = 448  # between the left column (x1 = 420) and the right one (x0 = 476)


def test_export_writes_archive_formats_from_the_records(tmp_path: Path) -> None:
    """An archive converted to JSON Lines gets its ALTO, Markdown and searchable PDF later,
    from the records, without a model (``view OUT --export DIR --formats ...``)."""
    import shutil
    import subprocess

    from schemas import validate

    scan = tmp_path / "two-columns.png"
    _draw(TWO_COLUMNS).save(scan)
    engine = ScriptedEngine(lambda request: model_output(TWO_COLUMNS), resolution=SIDE)
    out = tmp_path / "out.jsonl"
    with DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="scripted") as client:
        run_job(client.models, [scan], Options(tasks=("text",), dpi=150), out)
    target = tmp_path / "export"
    command = ["view", str(out), "--export", str(target), "--formats", "alto,md,pdf"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    folder = target / "0001-two-columns"
    validate((folder / "alto" / "page-0001.xml").read_text(encoding="utf-8"), "alto-4-4.xsd")
    texts = [text for _, text in TWO_COLUMNS]
    markdown = (folder / "document.md").read_text(encoding="utf-8")
    assert all(text.replace("&", "\\&").split(" <")[0] in markdown for text in texts[:-1])
    if shutil.which("pdftotext"):
        found = subprocess.run(
            ["pdftotext", str(folder / "document.pdf"), "-"], capture_output=True, text=True
        ).stdout
        # pdftotext orders words its own way (rows across both columns here)
        assert set(" ".join(texts[:-1]).split()) <= set(found.split())
    refused = runner.invoke(app, ["view", str(out), "--formats", "md"])
    assert refused.exit_code == 2 and "--formats goes with --export" in refused.stderr
