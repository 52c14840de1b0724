"""The reading options are declared once (``docvlm.reading.options.ReadOptions``): the CLI's
flags and the service's upload form show the same help and enforce the same bounds."""

from __future__ import annotations

import typer.main

from docvlm.cli import app
from docvlm.reading.options import ReadOptions, option_help

SHARED = ("pages", "password", "dpi", "max_new_tokens")


def test_cli_flags_take_help_and_bounds_from_read_options() -> None:
    group = typer.main.get_command(app)
    for command_name in ("read-text", "read-table", "convert", "ask"):
        command = group.commands[command_name]  # type: ignore[attr-defined]
        params = {p.name: p for p in command.params}
        for name in SHARED:
            assert params[name].help == option_help(name), (command_name, name)
        dpi = params["dpi"].type
        field = ReadOptions.model_json_schema()["properties"]["dpi"]["anyOf"][0]
        assert (dpi.min, dpi.max) == (field["minimum"], field["maximum"])


def test_the_upload_form_is_described_by_the_same_options() -> None:
    from docvlm.server.convert import CONVERT_FORM

    form = CONVERT_FORM["requestBody"]["content"]["multipart/form-data"]["schema"]
    for name in SHARED:
        assert form["properties"][name]["description"] == option_help(name)
