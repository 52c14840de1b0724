"""What a new user meets in the first hour: plain scripts, schemas, clear errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from conftest import scribbled
from PIL import Image, TiffImagePlugin
from pydantic import TypeAdapter

from docvlm import (
    CheckpointUnavailableError,
    Document,
    DocVLM,
    PageRangeError,
    Settings,
    SettingsError,
    TableResult,
    UnsupportedInputError,
)
from docvlm.cli.common import human as _human
from docvlm.document import json_schema
from docvlm.engines import Generation, Request
from docvlm.engines.checkpoints import resolve_checkpoint
from docvlm.reading.inspection import inspect_sources
from docvlm.reading.render import PageImage, load_pages
from docvlm.reading.sources import expand_sources
from docvlm.results import Result
from docvlm.settings import Limits
from docvlm.testing import ScriptedEngine, write_tiny_checkpoint


def test_one_call_api_in_a_script_without_a_main_guard(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    """The README's snippet, saved as a script with no ``__main__`` guard, runs a PDF."""
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny", resolution=224)
    pdf = make_pdf(2)
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json
            from docvlm import read_table

            tables = read_table({str(pdf)!r}, checkpoint={str(checkpoint)!r}, max_new_tokens=4)
            print(json.dumps([[t.page, t.status] for t in tables]))
            """
        )
    )
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert "bootstrapping" not in run.stderr
    pages = json.loads(run.stdout.strip().splitlines()[-1])
    assert [page for page, _status in pages] == [1, 2]


KERN = "**kern\n*clefG2\n*M4/4\n4c\n4d\n4e\n4f\n=\n*-\n"
TABLE = (
    "<thead><tr><th rowspan=2>Drug</th><th colspan=2>Dose</th></tr>"
    "<tr><th>mg</th><th>n</th></tr></thead>"
    "<tbody><tr><td>A<sup>a</sup></td><td>10</td><td>4</td></tr></tbody>"
)
RESPONSES = {
    "ocr": "<loc0100><loc0100><loc0200><loc0900> Results of the assay",
    "table html": TABLE,
    "smiles": "C/C=C/C[C@H](N)C(=O)O",
    "kern": KERN,
    "caption en": "a page with a table",
}


def _respond(request: Request) -> str:
    if request.prompt.startswith("detect"):
        table, text = "<loc0100><loc0100><loc0500><loc0900>", "<loc0600><loc0100><loc0900><loc0900>"
        return f"{table} table ; {text} text"
    if request.prompt.startswith("answer"):
        return "the assay"
    return RESPONSES[request.prompt]


def test_every_record_validates_under_its_schema_and_loads_back(
    make_pdf: Callable[..., Path],
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("rdkit")
    pytest.importorskip("music21")
    engine = ScriptedEngine(_respond)
    client = DocVLM(engine_factory=lambda c, s: engine, checkpoint="scripted")
    document = client.convert(
        make_pdf(1),
        tasks=("text", "table", "molecule", "music", "layout", "caption", "ask"),
        question="what?",
    )
    results = {r.task: r for r in document.pages[0].results}
    # every kind came back with real content, so the schema is exercised on it
    table = results["table"]
    assert isinstance(table, TableResult) and table.table is not None
    assert table.table.header_rows == 2 and "<th" in table.table.html
    assert results["molecule"].status == "ok"
    assert results["music"].status == "ok", results["music"].error
    assert results["text"].lines and results["layout"].regions  # type: ignore[union-attr]

    record = json.loads(document.model_dump_json())
    assert "html" in record["pages"][0]["results"][1]["table"]
    jsonschema.validate(record, json_schema("document"))
    assert Document.model_validate_json(document.model_dump_json()) == document

    results = TypeAdapter(list[Result])
    listed = json.loads(results.dump_json(list(document.pages[0].results)))
    jsonschema.validate(listed, json_schema("results"))
    assert results.validate_python(listed) == list(document.pages[0].results)
    # a field the model does not have is still refused (extra="forbid" holds)
    record["pages"][0]["unknown"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, json_schema("document"))


def _odt(path: Path) -> Path:
    """An OpenDocument text file as office suites write it (``mimetype`` stored first)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", "<office:document-content/>")
        archive.writestr("META-INF/manifest.xml", "<manifest/>")
    return path


def test_an_office_file_renamed_pdf_is_one_clear_failure(tmp_path: Path) -> None:
    items = list(expand_sources([_odt(tmp_path / "letter.pdf")]))
    assert len(items) == 1
    (item,) = items
    assert item.source is None and isinstance(item.error, UnsupportedInputError)
    assert "OpenDocument" in str(item.error) and "letter.pdf" in str(item.error)


def test_folders_skip_what_is_not_a_document_and_obey_globs(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    folder = tmp_path / "scans"
    (folder / "2024").mkdir(parents=True)
    pdf = make_pdf(1)
    (folder / "2024" / "a.pdf").write_bytes(pdf.read_bytes())
    (folder / "b.pdf").write_bytes(pdf.read_bytes())
    (folder / "damaged.pdf").write_bytes(b"%PD broken")  # named a PDF: read and reported
    (folder / "README").write_text("scanned in 2024\n")
    (folder / "labels.json").write_text("{}")
    skipped: list[tuple[str, str]] = []
    names = [
        Path(i.name).name
        for i in expand_sources([folder], on_skip=lambda n, r: skipped.append((n, r)))
    ]
    assert names == ["b.pdf", "damaged.pdf", "a.pdf"]
    assert sorted(Path(n).name for n, _ in skipped) == ["README", "labels.json"]
    assert all("not a document" in reason for _, reason in skipped)

    only_2024 = [i.name for i in expand_sources([folder], include=["2024/*"])]
    assert only_2024 == [str(folder / "2024" / "a.pdf")]
    no_damage = [Path(i.name).name for i in expand_sources([folder], exclude=["damaged.*"])]
    assert no_damage == ["b.pdf", "a.pdf"]
    # a file named on its own is always read, whatever it is
    (readme,) = expand_sources([folder / "README"])
    assert readme.source == folder / "README"


@pytest.mark.parametrize("selection", ["2-1", "3-", ",", "0"])
def test_a_reversed_or_empty_page_selection_is_an_error(
    selection: str, make_pdf: Callable[..., Path]
) -> None:
    with pytest.raises(PageRangeError, match=r"scan\.pdf"):
        list(load_pages(make_pdf(2), pages=selection))


def test_a_bad_environment_value_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCVLM_DPI", "abc")
    with pytest.raises(SettingsError) as raised:
        Settings()
    assert str(raised.value).startswith("bad setting DOCVLM_DPI='abc': ")
    assert "\n" not in str(raised.value)
    monkeypatch.delenv("DOCVLM_DPI")
    monkeypatch.setenv("DOCVLM_RENDER_TIMEOUT", "none")
    assert Settings().render_timeout is None
    with pytest.raises(SettingsError, match=r"^bad setting batch_size=0: "):
        Settings(batch_size=0)


def test_inspect_and_convert_agree_on_page_size(tmp_path: Path) -> None:
    pdfium = pytest.importorskip("pypdfium2")
    document = pdfium.PdfDocument.new()
    document.new_page(595.276, 841.89)  # A4 in points: 1240.2 x 1753.9 pixels at 150 dpi
    document.new_page(5000.0, 5000.0)  # over the pixel limit: rendered at a lower DPI
    path = tmp_path / "a4.pdf"
    document.save(str(path))
    document.close()
    limits = Limits(max_page_pixels=4_000_000)
    (info,) = inspect_sources([path], dpi=150, limits=limits)
    rendered = [p for p in load_pages(path, dpi=150, limits=limits) if isinstance(p, PageImage)]
    assert [(p.width, p.height) for p in info.pages] == [p.image.size for p in rendered]
    assert rendered[0].image.size == (1241, 1754)
    assert [p.dpi for p in info.pages] == [p.dpi for p in rendered]


def test_an_unreachable_hub_fails_at_once_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(CheckpointUnavailableError) as raised:
        resolve_checkpoint("google/paligemma2-3b-mix-448", cache_dir=tmp_path, offline=False)
    message = str(raised.value)
    assert "cannot be reached" in message and "--checkpoint" in message
    assert "DOCVLM_<TASK>_CHECKPOINT" in message


def test_decoder_noise_on_stderr_becomes_the_page_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """What libtiff prints on file descriptor 2 is kept with the page that caused it."""
    path = tmp_path / "scan.tif"
    Image.new("L", (40, 30), 255).save(path, compression="tiff_lzw")
    real_load = TiffImagePlugin.TiffImageFile.load
    noise = "TIFFReadDirectory: More samples per pixel than can be decoded"

    def noisy_load(self: TiffImagePlugin.TiffImageFile) -> object:
        if self._im is None:  # libtiff decodes (and complains) once per frame
            os.write(2, f"{noise}\n".encode())
        return real_load(self)

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "load", noisy_load)
    (page,) = load_pages(path)
    assert isinstance(page, PageImage)
    assert page.warnings == (
        "decoder: TIFFReadDirectory: More samples per pixel than can be decoded",
    )
    assert "More samples" not in capfd.readouterr().err


def test_reprs_are_short_and_notebooks_get_tables_and_drawings(
    make_pdf: Callable[..., Path],
) -> None:
    pytest.importorskip("rdkit")
    pandas = pytest.importorskip("pandas")
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    long_table = TABLE.replace("</tbody>", "<tr><td>x</td><td>1</td><td>2</td></tr>" * 2000)
    long_table += "</tbody>"
    outputs = {"table html": long_table, "smiles": RESPONSES["smiles"]}
    engine = ScriptedEngine(lambda request: outputs[request.prompt])
    client = DocVLM(engine_factory=lambda c, s: engine, checkpoint="scripted")
    document = client.convert(make_pdf(1), tasks=("table", "molecule"))
    table, molecule = document.pages[0].results
    assert isinstance(table, TableResult) and table.table is not None
    assert len(table.raw) > 30_000
    for shown in (table, molecule, document.pages[0], document):
        assert len(repr(shown)) < 400, repr(shown)
    assert "page=1" in repr(table) and "status='ok'" in repr(table)
    assert repr(document).startswith("Document(source=") and "pages=1" in repr(document)

    assert table._repr_html_() == table.table.html
    frame = table.to_pandas()
    assert isinstance(frame, pandas.DataFrame) and frame.shape == (2001, 3)
    assert frame.columns.nlevels == 2 and frame.values.tolist()[-1] == ["x", "1", "2"]

    drawer = rdMolDraw2D.MolDraw2DSVG(300, 220)
    drawer.DrawMolecule(Chem.MolFromSmiles(RESPONSES["smiles"]))
    drawer.FinishDrawing()
    assert molecule._repr_svg_() == drawer.GetDrawingText()  # type: ignore[union-attr]
    assert table.table.html in document._repr_html_()


def test_help_shows_conventional_placeholders() -> None:
    from typer.testing import CliRunner

    from docvlm.cli import app

    runner = CliRunner()
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name in commands:
        shown = runner.invoke(app, [name, "--help"], env={"COLUMNS": "100"})
        assert shown.exit_code == 0, (name, shown.output)
        assert not re.search(r"<(bool|str|int|float|path|list\[)|\{\w+\}", shown.output), (
            name,
            shown.output,
        )
    convert = runner.invoke(app, ["convert", "--help"], env={"COLUMNS": "100"}).output
    assert "Usage: docvlm convert [OPTIONS] FILES..." in convert
    assert "-p, --pages PAGES" in convert and re.search(r"^\s+--json\s+Print", convert, re.M)


def test_cut_off_output_is_visible_and_boxes_stay_on_the_page(tmp_path: Path) -> None:
    def respond(request: Request) -> str | Generation:
        if request.prompt.startswith("detect"):
            # the model points into the white padding right of and below the page
            return "<loc0000><loc0000><loc1023><loc1023> table"
        return Generation(text="<tr><td>1</td><td>2", stop="length")

    scan = tmp_path / "scan.png"
    scribbled((1275, 900)).save(scan)
    engine = ScriptedEngine(respond)
    client = DocVLM(engine_factory=lambda c, s: engine, checkpoint="scripted")
    document = client.convert(scan, tasks=("layout", "table"))
    (page,) = document.pages
    layout, table = page.results
    (region,) = layout.regions  # type: ignore[union-attr]
    assert (region.box.x1, region.box.y1) == (1275, 900)
    assert all(r.box.x1 <= 1275 and r.box.y1 <= 900 for r in page.results)
    assert table.stop == "length"
    assert page.warnings == (
        "table output was cut at the token limit (max_new_tokens): it is incomplete",
    )
    # the CLI's plain output says so too
    assert _human(table).splitlines()[0] == (
        f"# {scan} page 1 (table) ! table output was cut at the token limit "
        "(max_new_tokens): it is incomplete"
    )


def test_an_office_open_xml_file_is_not_an_archive_wherever_its_marker_sits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "report.pdf"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
        archive.writestr("docProps/app.xml", "<Properties/>")
        archive.writestr("_rels/.rels", "<Relationships/>")
        archive.writestr("[Content_Types].xml", "<Types/>")
    (item,) = expand_sources([path])
    assert isinstance(item.error, UnsupportedInputError) and "Office Open XML" in str(item.error)
