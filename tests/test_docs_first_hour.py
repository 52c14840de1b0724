"""What the docs tell a new user agrees with the code: the extras, the engines, the output
folder's names, and the README's command that works without hub access."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest

from docvlm.archive.output import Output
from docvlm.archive.sinks import folder_name
from docvlm.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _doc(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def test_the_quickstart_names_every_extra() -> None:
    extras = tomllib.loads(_doc("pyproject.toml"))["project"]["optional-dependencies"]
    (line,) = re.findall(r"^Extras: (.*?)\n\n", _doc("docs/quickstart.md"), re.M | re.S)
    named = re.findall(r"`([a-z0-9]+)`(?: \(|,| \w)", line)
    assert sorted(set(named)) == sorted(extras)


def test_concepts_names_the_engines_that_exist() -> None:
    concepts = _doc("docs/concepts.md")
    engines = typing.get_args(Settings.model_fields["engine"].annotation)
    assert "planned" not in concepts
    (row,) = re.findall(r"│  engine .*?\n   ▼", concepts, re.S)
    assert "docvlm's CUDA engine" in row and "transformers" in row
    assert set(engines) == {"auto", "docvlm", "transformers"}


def test_the_output_folder_names_in_the_docs_are_the_ones_written() -> None:
    etl = _doc("docs/etl.md")
    examples = re.findall(r"`docvlm convert (\S+) --out archive/`\nwrites `archive/([^/]+)/", etl)
    examples += re.findall(r"`(scans/[^`]+)` becomes\n`([^`/]+)/`", etl)
    assert len(examples) == 2
    for source, folder in examples:
        assert folder_name(source) == folder


@pytest.mark.parametrize(("out", "formats"), [("x.md", "md"), ("x.txt", "txt")])
def test_a_file_out_of_a_folder_format_points_at_the_folder_naming(out: str, formats: str) -> None:
    with pytest.raises(ValueError) as refused:
        Output.parse(out)
    assert f"use --out DIR/ --formats {formats} (each document's files in DIR/NAME-<hash>/" in str(
        refused.value
    )
    assert "DIR/NAME-<hash>/document.md" in _doc("docs/etl.md")


@pytest.mark.slow
def test_the_readme_job_without_the_hub_prints_what_the_readme_shows(tmp_path: Path) -> None:
    readme = _doc("README.md")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", readme, re.S | re.M)
    (block,) = [b for kind, b in blocks if kind == "bash" and "/tmp/tiny" in b]
    make, convert = [c.replace("/tmp/tiny", str(tmp_path / "tiny")) for c in block.splitlines()]
    (shown,) = [b for kind, b in blocks if kind == "" and "/tmp/tiny" in b]
    environment = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    runs = []
    for command in (make, convert + " --log-format rich"):  # rich: as on a terminal
        argv = command.replace(".venv/bin/docvlm", f"{sys.executable} -m docvlm").split()
        argv[0] = sys.executable if argv[0].endswith("python") else argv[0]
        runs.append(subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True))
        assert runs[-1].returncode == 0, runs[-1].stderr
    assert runs[0].stdout.strip() == str(tmp_path / "tiny")
    headers = [line for line in runs[1].stdout.splitlines() if line.startswith("# ")]
    assert headers == [line for line in shown.splitlines() if line.startswith("# ")]
    numbers = re.compile(r"\d+\.\d+ s|\d+\.\d+ pages/s|\d+%")  # timings differ run to run
    (summary,) = [line for line in runs[1].stderr.splitlines() if "file(s) read" in line]
    (pasted,) = [line for line in shown.splitlines() if "file(s) read" in line]
    assert numbers.sub("#", summary) == numbers.sub("#", pasted)


def test_etl_documents_every_parquet_column() -> None:
    from docvlm.archive.parquet import COLUMNS

    documented: dict[str, str] = {}
    for names, kind in re.findall(r"^\| (`[a-z0-9_]+`(?:, `[a-z0-9_]+`)*) \| ([a-z0-9 ]+) \|",
                                  _doc("docs/etl.md"), re.M):  # fmt: skip
        for name in re.findall(r"`([a-z0-9_]+)`", names):
            documented[name] = kind.replace("list of string", "list<string>")
    assert [name for name in documented if name in COLUMNS] == list(COLUMNS)
    assert {name: documented[name] for name in COLUMNS} == {
        name: kind for name, (kind, _) in COLUMNS.items()
    }
