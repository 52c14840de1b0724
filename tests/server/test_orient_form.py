"""The service's upload form carries ``orient`` (issue 28), declared once in ReadOptions."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from starlette.datastructures import FormData

from docvlm.reading.options import form_schema
from docvlm.server.convert import _options


def test_the_form_offers_orient_on_by_default() -> None:
    field = form_schema()["orient"]
    assert field["type"] == "boolean" and field["default"] is True
    assert "upright" in field["description"]


@pytest.mark.parametrize(
    ("sent", "orient"), [(None, True), ("true", True), ("false", False), ("0", False)]
)
def test_the_form_field_turns_orientation_off(sent: str | None, orient: bool) -> None:
    fields = [("tasks", "text")] + ([("orient", sent)] if sent is not None else [])
    assert _options(FormData(fields))["orient"] is orient
