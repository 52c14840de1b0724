from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import docvlm
import parsers

HEAVY = ("torch", "transformers", "rdkit", "music21", "ray")


def test_import_stays_light() -> None:
    code = (
        "import sys, json, docvlm, parsers, docvlm.cli;"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_parsers_never_import_docvlm() -> None:
    code = "import sys, parsers; print('docvlm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_all_is_honest() -> None:
    for module in (docvlm, parsers):
        assert sorted(module.__all__) == sorted(set(module.__all__))
        for name in module.__all__:
            assert hasattr(module, name), name
        public = {n for n in vars(module) if not n.startswith("_") and n[0].isupper()}
        assert public <= set(module.__all__) | {"Image"}, public - set(module.__all__)


def test_one_call_functions_exported() -> None:
    for name in ("read_text", "read_table", "read_molecule", "read_music", "convert", "DocVLM"):
        assert name in docvlm.__all__


def test_no_two_files_import_each_other() -> None:
    """However indirectly, and counting function-level and TYPE_CHECKING imports."""
    import grimp

    graph = grimp.build_graph("docvlm", "parsers")
    cycles = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.add(tuple(sorted((importer, imported))))
    assert not cycles, sorted(cycles)


def test_the_layout_stays_small() -> None:
    """At most 12 modules directly in docvlm/ (what a user imports), no file over 450 lines."""
    root = Path(docvlm.__file__).parent
    top = sorted(p.name for p in root.glob("*.py"))
    assert len(top) <= 12, top
    long = {
        str(p.relative_to(root.parent)): n
        for folder in (root, Path(parsers.__file__).parent)
        for p in folder.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert not long, long


def test_the_moved_modules_old_paths_are_gone() -> None:
    # nothing was released under the old paths, so no shim protects anybody
    for old in ("runner", "pipeline", "records", "parquet", "render", "regions"):
        assert importlib.util.find_spec(f"docvlm.{old}") is None, old
