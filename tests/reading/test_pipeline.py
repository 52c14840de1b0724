"""The whole path, PDF page to typed results, on the tiny checkpoint loaded from disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import scribbled
from PIL import Image, ImageDraw

import docvlm
from docvlm import (
    CheckpointNotConfiguredError,
    CheckpointUnavailableError,
    DocVLM,
    PageRangeError,
    Settings,
    TableResult,
)
from docvlm.engines import Request
from docvlm.testing import ScriptedEngine

ALL_TASKS = ("text", "table", "molecule", "music", "layout", "caption", "ask")


def test_every_task_through_the_tiny_checkpoint(
    tiny_checkpoint: Path, make_pdf: Callable[..., Path]
) -> None:
    pdf = make_pdf(3)
    client = DocVLM(Settings(device="cpu", batch_size=4), checkpoint=str(tiny_checkpoint))
    document = client.convert(
        pdf, tasks=ALL_TASKS, pages="1-2", max_new_tokens=12, question="what is the title?"
    )
    assert document.status == "success"
    assert [p.number for p in document.pages] == [1, 2]
    for page in document.pages:
        # an 8.5 x 11 inch scan rendered at the default 150 dpi
        assert (page.width, page.height) == (1275, 1651)
        assert {r.task for r in page.results} == set(ALL_TASKS)
        for result in page.results:
            assert result.checkpoint == str(tiny_checkpoint)
            assert result.page == page.number
            assert result.raw  # random weights write noise, but they write
            assert 0 <= result.box.x0 < result.box.x1 <= page.width
            assert 0 <= result.box.y0 < result.box.y1 <= page.height
            if result.status == "parse_error":
                assert result.error
        layout = next(r for r in page.results if r.task == "layout")
        for region in layout.regions:  # boxes mapped from the square input to page pixels
            assert 0 <= region.box.x0 <= region.box.x1 <= max(page.width, page.height)


def test_one_call_function_with_bytes_and_images(tiny_checkpoint: Path, corpus: Path) -> None:
    path = corpus / "tables/pubtabnet/examples/PMC1626454_002_00.png"
    settings = Settings(device="cpu")
    from_path = docvlm.read_table(
        path, checkpoint=str(tiny_checkpoint), settings=settings, max_new_tokens=8
    )
    from_bytes = docvlm.read_table(
        path.read_bytes(), checkpoint=str(tiny_checkpoint), settings=settings, max_new_tokens=8
    )
    from_image = docvlm.read_table(
        Image.open(path), checkpoint=str(tiny_checkpoint), settings=settings, max_new_tokens=8
    )
    assert isinstance(from_path[0], TableResult)
    assert from_path[0].raw == from_bytes[0].raw == from_image[0].raw
    assert from_bytes[0].source == "<bytes>" and from_image[0].source == "<image>"


def test_hub_id_loads_from_the_cache_like_the_hub(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A hub id resolves through huggingface_hub's cache layout, offline."""
    snapshot = tmp_path / "models--acme--tiny-paligemma2" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for file in tiny_checkpoint.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (tmp_path / "models--acme--tiny-paligemma2" / "refs").mkdir()
    (tmp_path / "models--acme--tiny-paligemma2" / "refs" / "main").write_text("0" * 40)
    settings = Settings(device="cpu", cache_dir=tmp_path, offline=True)
    results = docvlm.read_text(
        Image.new("RGB", (300, 200), "white"),
        checkpoint="acme/tiny-paligemma2",
        settings=settings,
        max_new_tokens=8,
    )
    assert results[0].checkpoint == "acme/tiny-paligemma2"
    with pytest.raises(CheckpointUnavailableError, match="not in the cache and offline"):
        docvlm.read_text(
            Image.new("RGB", (30, 20)),
            checkpoint="acme/absent",
            settings=settings,
            max_new_tokens=8,
        )


def test_missing_checkpoints_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotConfiguredError, match="docvlm finetune"):
        DocVLM(Settings()).checkpoint_for("table")
    with pytest.raises(CheckpointUnavailableError, match="does not exist"):
        docvlm.read_text(Image.new("RGB", (30, 20)), checkpoint=str(tmp_path / "nope"))
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(CheckpointUnavailableError, match="safetensors"):
        docvlm.read_text(Image.new("RGB", (30, 20)), checkpoint=str(tmp_path))


def _scripted(text: str) -> tuple[DocVLM, ScriptedEngine]:
    engine = ScriptedEngine(lambda request: text, resolution=448)
    return DocVLM(
        Settings(), engine_factory=lambda checkpoint, settings: engine, checkpoint="scripted"
    ), engine


def test_text_tiles_cover_the_page_and_merge(tmp_path: Path) -> None:
    client, engine = _scripted("<loc0100><loc0300><loc0200><loc0700> a line")
    pdf = tmp_path / "written.pdf"
    scribbled((850, 1100)).save(pdf, "PDF", resolution=100.0)  # ink in every tile
    (result,) = client.read_text(pdf)
    # 1275 x 1651 page, 448 px tiles with 96 px overlap: 4 columns x 5 rows
    assert len(engine.requests) == 20
    assert all(r.image.size == (448, 448) for r in engine.requests)
    assert len(result.raw.split("\f")) == 20
    # every tile reported a line near its own top-left; the last row of tiles starts only
    # 147 px below the row above, so its line lies in the part that row owns and is dropped
    assert len(result.lines) == 16
    assert all(line.box is not None and line.box.x1 <= 1275 for line in result.lines)


def test_crops_are_padded_not_stretched() -> None:
    client, engine = _scripted("<tr><td>1</td></tr>")
    image = Image.new("RGB", (400, 100), "black")
    ImageDraw.Draw(image).text((100, 60), "white on black", fill="white")  # ink to read
    (result,) = client.read_table(image)
    (request,) = engine.requests
    assert request.image.size == (400, 400)
    assert request.image.getpixel((10, 10)) == (0, 0, 0)
    assert request.image.getpixel((10, 300)) == (255, 255, 255)  # white padding below
    assert result.table is not None and result.table.shape == (1, 1)


def test_table_cell_boxes_land_in_page_pixels() -> None:
    # the model saw a 400x400 square padded from a 400x100 crop; the cell covers its top half
    client, _ = _scripted('<tr><td coords="<loc0000><loc0000><loc0127><loc1023>">x</td></tr>')
    (result,) = client.read_table(scribbled((400, 100)))
    box = result.table.cells[0].box  # type: ignore[union-attr]
    assert box is not None and (box.x0, box.y0, box.x1, box.y1) == (0, 0, 400, 50)


def test_bad_page_and_bad_file_are_typed(tmp_path: Path, make_pdf: Callable[..., Path]) -> None:
    client, _ = _scripted("x")
    with pytest.raises(PageRangeError, match="page 9 is out of range"):
        client.read_text(make_pdf(2), pages="9")
    text_file = tmp_path / "notes.pdf"
    text_file.write_text("hello, not a pdf")
    document = client.convert(text_file)
    assert document.status == "failure"
    assert document.error and "not a PDF" in document.error


def test_requests_carry_task_prompt_and_budget() -> None:
    seen: list[Request] = []

    def respond(request: Request) -> str:
        seen.append(request)
        return "CCO"

    engine = ScriptedEngine(respond)
    client = DocVLM(engine_factory=lambda c, s: engine, checkpoint="x")
    (result,) = client.read_molecule(scribbled((50, 80)))
    assert result.molecule is not None and result.molecule.smiles == "CCO"
    assert (seen[0].prompt, seen[0].max_new_tokens) == ("smiles", 256)
