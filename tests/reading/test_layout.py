"""Layout-driven conversion: regions found, cropped, read by their task, in reading order;
tables continued across pages joined."""

from __future__ import annotations

from pathlib import Path

from conftest import scribbled
from PIL import Image

from docvlm import DocVLM, Settings, TableResult, TextResult
from docvlm.engines import Request
from docvlm.reading.regions import reading_order
from docvlm.testing import ScriptedEngine
from parsers import Box, Detection, box_to_tokens

TABLE = "<thead><tr><td>Name</td><td>Value</td></tr></thead><tr><td>{a}</td><td>{b}</td></tr>"


def _two_column_page() -> Image.Image:
    return scribbled((1000, 1000))


def _layout_output(side: float = 1000) -> str:
    # a full-width title, then a left column (text, table) and a right column (molecule)
    regions = [
        (Box(x0=50, y0=20, x1=950, y1=100), "text"),
        (Box(x0=550, y0=150, x1=950, y1=400), "molecule"),
        (Box(x0=50, y0=150, x1=450, y1=300), "text"),
        (Box(x0=50, y0=320, x1=450, y1=600), "table"),
        (Box(x0=600, y0=700, x1=900, y1=900), "figure"),
    ]
    return " ; ".join(box_to_tokens(box, side, side) + f" {label}" for box, label in regions)


def _engine(log: list[Request]) -> ScriptedEngine:
    def respond(request: Request) -> str:
        log.append(request)
        return {
            "detect table ; molecule ; music ; text ; figure": _layout_output(),
            "table html": TABLE.format(a="x", b="1"),
            "smiles": "c1ccccc1O",
            "ocr": f"text {request.image.size[0]}",
            "caption en": "a plot",
        }[request.prompt]

    return ScriptedEngine(respond, resolution=896)


def test_layout_regions_are_read_by_their_task_in_reading_order() -> None:
    log: list[Request] = []
    engine = _engine(log)
    client = DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="x")
    document = client.convert(
        _two_column_page(), tasks=["text", "table", "molecule", "caption"], layout=True
    )
    (page,) = document.pages
    tasks = [r.task for r in page.results]
    assert tasks == ["layout", "text", "text", "table", "molecule", "caption"]
    title, left = page.results[1], page.results[2]
    assert isinstance(title, TextResult) and title.box.y0 < left.box.y0
    table = page.results[3]
    assert isinstance(table, TableResult) and table.table is not None
    assert abs(table.box.x0 - 50) < 2 and abs(table.box.y1 - 600) < 2  # the crop, in page px
    crop_sides = sorted(r.image.size[0] for r in log if r.prompt == "table html")
    assert len(crop_sides) == 1 and abs(crop_sides[0] - 400) < 3  # padded to a square


def test_only_requested_tasks_are_run_and_callers_can_bring_regions() -> None:
    log: list[Request] = []
    engine = _engine(log)
    client = DocVLM(Settings(), engine_factory=lambda c, s: engine, checkpoint="x")
    regions = {
        1: [
            Detection(label="table", box=Box(x0=0, y0=500, x1=1000, y1=1000)),
            Detection(label="molecule", box=Box(x0=0, y0=0, x1=10, y1=10)),
        ]
    }
    document = client.convert(_two_column_page(), tasks=["table"], regions=regions)
    assert [r.task for r in document.pages[0].results] == ["table"]
    assert {r.prompt for r in log} == {"table html"}  # no layout model, no molecule


def test_reading_order_two_columns() -> None:
    boxes = [
        Box(x0=520, y0=100, x1=900, y1=200),
        Box(x0=50, y0=500, x1=450, y1=600),
        Box(x0=50, y0=100, x1=450, y1=200),
        Box(x0=50, y0=700, x1=950, y1=800),
    ]
    assert reading_order(boxes, 1000) == [2, 1, 0, 3]


def test_table_continued_on_the_next_page_is_joined(tmp_path: Path) -> None:
    pages = [scribbled((600, 800)) for _ in range(3)]
    pdf = tmp_path / "tables.pdf"
    pages[0].save(pdf, "PDF", save_all=True, append_images=pages[1:])
    outputs = iter(
        [
            TABLE.format(a="a", b="1"),  # page 1
            TABLE.format(a="b", b="2"),  # page 2 repeats the header: a continuation
            "<tr><td>only</td></tr>",  # page 3: one column, a different table
        ]
    )
    engine = ScriptedEngine(lambda request: next(outputs))
    client = DocVLM(Settings(batch_size=1), engine_factory=lambda c, s: engine, checkpoint="x")
    document = client.convert(pdf, tasks=["table"])
    assert len(document.tables) == 2
    joined = document.tables[0]
    assert joined.table is not None and joined.table.shape == (3, 2)
    assert [c.text for c in joined.table.cells] == ["Name", "Value", "a", "1", "b", "2"]
    assert [p.page for p in joined.parts] == [1, 2]
    assert all(len(p.results) == 1 for p in document.pages)  # pages keep their own parts


def test_table_cut_by_a_region_boundary_is_joined_and_other_headers_are_not() -> None:
    from docvlm.reading.stitch import stitch_tables
    from parsers import parse_table

    def result(page: int, box: Box, html: str) -> TableResult:
        return TableResult(
            source="s",
            page=page,
            box=box,
            checkpoint="c",
            prompt="p",
            raw=html,
            table=parse_table(html),
        )

    top = result(1, Box(x0=0, y0=0, x1=500, y1=300), TABLE.format(a="a", b="1"))
    below = result(1, Box(x0=0, y0=305, x1=500, y1=500), "<tr><td>b</td><td>2</td></tr>")
    other = result(
        2,
        Box(x0=0, y0=0, x1=500, y1=300),
        "<thead><tr><td>Other</td><td>Header</td></tr></thead><tr><td>c</td><td>3</td></tr>",
    )
    joined, separate = stitch_tables([top, below, other])
    assert joined.table is not None and joined.table.shape == (3, 2)
    assert [p.box.y0 for p in joined.parts] == [0, 305]
    assert separate is other
