from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
from typer.testing import CliRunner

from docvlm import json_schema
from docvlm.cli import app

runner = CliRunner()


def test_read_table_json_validates_against_the_schema(tiny_checkpoint: Path, corpus: Path) -> None:
    image = corpus / "tables/pubtabnet/examples/PMC1626454_002_00.png"
    result = runner.invoke(
        app,
        [
            "read-table",
            str(image),
            "--checkpoint",
            str(tiny_checkpoint),
            "--json",
            "--max-new-tokens",
            "16",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    jsonschema.validate(payload, json_schema("results"))
    assert payload[0]["task"] == "table" and payload[0]["source"] == str(image)


def test_read_command_takes_several_files_and_goes_on_past_a_bad_one(
    tiny_checkpoint: Path, corpus: Path, tmp_path: Path
) -> None:
    first, second = sorted((corpus / "tables/pubtabnet/examples").glob("*.png"))[:2]
    missing = tmp_path / "gone.png"
    args = ["read-table", str(first), str(missing), str(second), "-c", str(tiny_checkpoint)]
    result = runner.invoke(app, [*args, "--json", "--max-new-tokens", "4", "--device", "cpu"])
    assert result.exit_code == 1
    assert [r["source"] for r in json.loads(result.stdout)] == [str(first), str(second)]
    assert result.stderr.strip() == f"error: {missing}: no such file"


def test_convert_writes_jsonl_and_goes_on_past_bad_files(
    tiny_checkpoint: Path, make_pdf: Callable[..., Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_text("not a pdf at all")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app,
        [
            "convert",
            str(bad),
            str(make_pdf(2)),
            "-c",
            str(tiny_checkpoint),
            "--json",
            "--max-new-tokens",
            "4",
            "--dpi",
            "50",
            "-t",
            "text",
            "-t",
            "layout",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 1
    assert "bad.pdf" in result.stderr and "not a PDF" in result.stderr
    documents = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["status"] for d in documents] == ["failure", "success"]
    for document in documents:
        jsonschema.validate(document, json_schema("document"))
    assert len(documents[1]["pages"]) == 2


def test_errors_are_one_line_and_exit_non_zero(
    tmp_path: Path, make_pdf: Callable[..., Path]
) -> None:
    pdf = make_pdf(1)
    cases = [  # a model that does not load is 5, an input that cannot be read 1
        (["read-table", str(pdf)], "no public checkpoint reads the 'table' task", 5),
        (["read-text", str(pdf), "-c", str(tmp_path / "missing")], "does not exist", 5),
        (["read-text", str(tmp_path / "nofile.png"), "-c", str(tmp_path)], "no such file", 1),
    ]
    for args, message, code in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == code, args
        assert message in result.stderr
        assert "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1


def test_page_out_of_range(tiny_checkpoint: Path, make_pdf: Callable[..., Path]) -> None:
    result = runner.invoke(
        app, ["read-text", str(make_pdf(2)), "-c", str(tiny_checkpoint), "--pages", "5"]
    )
    assert result.exit_code == 1
    assert "page 5 is out of range (the document has 2 page(s))" in result.stderr


def test_help_explains_every_option() -> None:
    result = runner.invoke(app, ["read-table", "--help"])
    assert result.exit_code == 0
    for option in (
        "--checkpoint",
        "--pages",
        "--password",
        "--dpi",
        "--max-new-tokens",
        "--device",
        "--json",
        "--out",
    ):
        assert option in result.stdout


def test_schema_command() -> None:
    result = runner.invoke(app, ["schema", "document"])
    assert json.loads(result.stdout)["title"] == "Document"


def test_a_bad_setting_is_one_line_in_every_command(tmp_path: Path) -> None:
    """``DOCVLM_DPI=abc`` used to print a traceback from commands that read settings
    themselves (inspect); the script turns it into one line and exit status 2."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DOCVLM_DPI": "abc"}
    sample = Path(__file__).parent.parent / "examples" / "sample.pdf"
    for command in (["inspect", str(sample)], ["status", str(tmp_path / "x.jsonl")]):
        out = subprocess.run(
            [sys.executable, "-m", "docvlm", *command], capture_output=True, text=True, env=env
        )
        lines = out.stderr.strip().splitlines()
        assert out.returncode in (1, 2), out.stderr
        assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
        if command[0] == "inspect":
            assert out.returncode == 2 and "DOCVLM_DPI='abc'" in lines[0]


def test_version_and_client_repr(tiny_checkpoint: Path) -> None:
    import docvlm
    from docvlm import DocVLM, Settings

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"docvlm {docvlm.__version__}"
    with DocVLM(Settings(device="cpu"), checkpoint=str(tiny_checkpoint)) as client:
        assert "models loaded: none yet" in repr(client)
        client.engine("text")
        assert repr(client).endswith(f"models loaded: {tiny_checkpoint})")
        assert "device='cpu'" in repr(client)
