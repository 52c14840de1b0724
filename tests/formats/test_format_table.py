"""One list of formats: a format is a row of ``FORMATS``, and the CLI help, the sinks'
advice, ``--formats``, ``write_formats`` and ``Document.to_*`` all come from the rows."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import get_args

import pytest
from format_pages import two_column_document

from docvlm.archive.output import Output
from docvlm.cli.common import Formats
from docvlm.formats import files
from docvlm.formats.common import Converted
from docvlm.formats.files import FORMATS, FormatSpec, Inputs, parse_formats, write_formats


def _advised(suffix: str) -> set[str]:
    """The formats ``--out x.SUFFIX`` is told to use instead."""
    with pytest.raises(ValueError, match="--formats") as refused:
        Output.parse(f"x{suffix}")
    match = re.search(r"--formats ([\w,]+)", str(refused.value))
    assert match, refused.value
    return set(match.group(1).split(","))


def test_the_cli_help_and_the_sinks_name_exactly_the_tables_formats() -> None:
    help_text = get_args(Formats)[1].help  # the typer.Option of --formats
    assert re.findall(r"(?:: |, )(\w+) \(", help_text) == list(FORMATS)
    for spec in FORMATS.values():
        assert f"{spec.name} ({spec.help})" in help_text
    suffixes = {PurePath(spec.files).suffix for spec in FORMATS.values()}
    advised = [_advised(suffix) for suffix in sorted(suffixes)]
    assert set().union(*advised) == set(FORMATS)
    assert _advised(".xml") == {"alto", "page"}


def test_a_new_row_is_all_a_format_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def write(document: Converted, folder: Path, inputs: Inputs) -> None:
        (folder / "document.words").write_text(str(len(document.pages)), encoding="utf-8")

    row = FormatSpec("words", "a count of pages", "document.words", write)
    patched = {**FORMATS, "words": row}
    monkeypatch.setattr(files, "FORMATS", MappingProxyType(patched))
    assert parse_formats("md, WORDS") == ("md", "words")
    assert "words (a count of pages)" in files.formats_help()
    assert _advised(".words") == {"words"}
    document = two_column_document()
    assert write_formats(document, tmp_path, ["words"]) == {}
    assert (tmp_path / "document.words").read_text() == "1"
    # Document.to_* read their row: a row's renderer is what they return
    patched["md"] = replace(FORMATS["md"], render=lambda d, _: f"{len(d.pages)} page")
    monkeypatch.setattr(files, "FORMATS", MappingProxyType(patched))
    assert document.to_markdown() == "1 page"
    with pytest.raises(ValueError, match="file only"):
        files.render("words", document)
