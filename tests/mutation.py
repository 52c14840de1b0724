"""Mutation score of the parsers and metrics: how many planted bugs the tests catch.

What it does: collects every mutation point in the paths of ``[tool.docvlm.mutation]``
(pyproject.toml): comparison swaps (< <=, == !=, in / not in, is / is not), arithmetic swaps
(+ -, * /), and/or swaps, integer constants +1, removed ``not``, and deleted statements
(calls, augmented assignments, ``continue``/``break``). It draws a seeded sample, and for
each mutant runs the tests that exercise that module (``tests`` in the same section) in a
fork of a process that has imported everything once, with the mutated module executed in
place (and its names rebound wherever they were re-exported), stopping at the first
failure. Nothing is written to the tree. A mutant is killed when a test
fails or the run times out; the rest survive and are printed with their location so that
each can be killed by a test or judged equivalent (``equivalent`` in the section: entries
``"path:line:mutation"`` with no observable difference, e.g. a bound that a guard before
it already ensures). The score is killed / (sampled - equivalent).

Not part of CI: it runs pytest hundreds of times (POSIX only: it forks).
Requirements: pip install -e ".[dev]"; ../shared/corpus present.
Run: python tests/mutation.py [--sample 250] [--seed 10] [--jobs 2] [--list]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import random
import sys
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_COMPARE = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_ARITHMETIC = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}


@dataclass(frozen=True)
class Mutant:
    path: str
    index: int  # the n-th mutation point of the file, in ast.walk order
    line: int
    description: str

    @property
    def key(self) -> str:
        return f"{self.path}:{self.line}:{self.description}"


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0]))
    return found


def _annotations(tree: ast.AST) -> set[int]:
    """Nodes inside type annotations, which have no behaviour to mutate."""
    found: set[int] = set()
    for node in ast.walk(tree):
        parts: list[ast.AST | None] = []
        if isinstance(node, ast.AnnAssign | ast.arg):
            parts.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            parts.append(node.returns)
        for part in parts:
            if part is not None:
                found.update(id(n) for n in ast.walk(part))
    return found


def _points(tree: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    skip = _docstrings(tree) | _annotations(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _COMPARE:
                    yield node, f"compare {i}: {type(op).__name__} -> {_COMPARE[type(op)].__name__}"
        elif isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            target = _ARITHMETIC[type(node.op)].__name__
            yield node, f"binop: {type(node.op).__name__} -> {target}"
        elif isinstance(node, ast.BoolOp):
            yield node, f"boolop: {type(node.op).__name__} swapped"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int)
            and not isinstance(node.value, bool)
        ):
            yield node, f"constant: {node.value} -> {node.value + 1}"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "not removed"
        elif isinstance(node, ast.Expr | ast.AugAssign | ast.Continue | ast.Break):
            yield node, f"statement deleted: {type(node).__name__}"


def _apply(tree: ast.Module, index: int) -> ast.Module:
    mutated = copy.deepcopy(tree)
    node, description = list(_points(mutated))[index]
    if description.startswith("compare"):
        assert isinstance(node, ast.Compare)
        i = int(description.split()[1].rstrip(":"))
        node.ops[i] = _COMPARE[type(node.ops[i])]()
    elif description.startswith("binop"):
        assert isinstance(node, ast.BinOp)
        node.op = _ARITHMETIC[type(node.op)]()
    elif description.startswith("boolop"):
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif description.startswith("constant"):
        assert isinstance(node, ast.Constant)
        node.value = node.value + 1
    elif description == "not removed":
        assert isinstance(node, ast.UnaryOp)
        replacement = node.operand
        for parent in ast.walk(mutated):
            for name, value in ast.iter_fields(parent):
                if value is node:
                    setattr(parent, name, replacement)
                elif isinstance(value, list):
                    value[:] = [replacement if v is node else v for v in value]
    else:
        for parent in ast.walk(mutated):
            for name, value in ast.iter_fields(parent):
                if isinstance(value, list) and node in value:
                    value[value.index(node)] = ast.Pass()
                    del name
    return ast.fix_missing_locations(mutated)


def collect(paths: list[str]) -> list[Mutant]:
    mutants = []
    for folder in paths:
        for file in sorted((ROOT / folder).rglob("*.py")):
            relative = file.relative_to(ROOT).as_posix()
            tree = ast.parse(file.read_text(encoding="utf-8"))
            for index, (node, description) in enumerate(_points(tree)):
                line = getattr(node, "lineno", 0)
                mutants.append(Mutant(relative, index, line, description))
    return mutants


def _tests_for(path: str, mapping: dict[str, list[str]]) -> list[str]:
    for prefix, tests in mapping.items():
        if path.startswith(prefix):
            return tests
    raise SystemExit(f"no tests mapped for {path} in [tool.docvlm.mutation.tests]")


def _module_name(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _patch(mutant: Mutant) -> None:
    """Execute the mutated source in its module and rebind every re-export of its names."""
    import importlib

    name = _module_name(mutant.path)
    module = importlib.import_module(name)
    old = dict(vars(module))
    tree = _apply(ast.parse((ROOT / mutant.path).read_text(encoding="utf-8")), mutant.index)
    exec(compile(tree, str(ROOT / mutant.path), "exec"), vars(module))
    _keep_models(old, vars(module))
    replaced = {
        id(value): vars(module)[key]
        for key, value in old.items()
        if key in vars(module) and vars(module)[key] is not value
    }
    for other in list(sys.modules.values()):
        if other is module or not getattr(other, "__name__", "").startswith(("parsers", "docvlm")):
            continue
        for key, value in list(vars(other).items()):
            if id(value) in replaced:
                setattr(other, key, replaced[id(value)])


def _keep_models(old: dict[str, object], new: dict[str, object]) -> None:
    """Pydantic models stay the same class (other models refer to them); their methods
    and properties are taken from the mutated class."""
    from pydantic import BaseModel

    for key, before in old.items():
        after = new.get(key)
        if not (isinstance(before, type) and issubclass(before, BaseModel)):
            continue
        if not isinstance(after, type) or after is before:
            continue
        for attribute, value in vars(after).items():
            if attribute.startswith("__"):
                continue
            if callable(value) or isinstance(value, property | staticmethod | classmethod):
                setattr(before, attribute, value)
        new[key] = before


def run(mutant: Mutant, tests: list[str], timeout: float) -> str:
    """'killed', 'survived' or 'timeout': the tests run in a fork with the mutant in place."""
    import os
    import signal
    import time

    pid = os.fork()
    if pid == 0:  # the child: mutate, run pytest quietly, report through the exit status
        code = 3
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            _patch(mutant)
            import pytest

            arguments = ["-x", "-q", "-p", "no:cacheprovider", "--hypothesis-seed=0"]
            arguments += ["-W", "ignore::pytest.PytestAssertRewriteWarning", *tests]
            code = int(pytest.main(arguments))
        except BaseException:  # a mutant that breaks the import is killed
            code = 4
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "timeout"


def _preload(config: dict[str, object]) -> None:
    """Import the packages and the heavy libraries once, so that each fork starts warm."""
    import importlib

    for path in config["paths"]:  # type: ignore[attr-defined]
        for file in sorted((ROOT / str(path)).rglob("*.py")):
            importlib.import_module(_module_name(file.relative_to(ROOT).as_posix()))
    for heavy in ("rdkit.Chem", "music21", "lxml.html", "apted"):  # not pytest plugins
        with contextlib.suppress(ImportError):
            importlib.import_module(heavy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["docvlm"]["mutation"]
    parser.add_argument("--sample", type=int, default=config.get("sample", 250))
    parser.add_argument("--seed", type=int, default=config.get("seed", 10))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--list", action="store_true", help="print the sample and stop")
    parser.add_argument("--only", default="", help="mutate only files under this path")
    args = parser.parse_args()

    mutants = [m for m in collect(config["paths"]) if m.path.startswith(args.only)]
    sample = sorted(
        random.Random(args.seed).sample(mutants, min(args.sample, len(mutants))),
        key=lambda m: (m.path, m.index),
    )
    equivalent = set(config.get("equivalent", []))
    print(f"{len(mutants)} mutation points; sampled {len(sample)} (seed {args.seed})")
    if args.list:
        for mutant in sample:
            print(mutant.key)
        return
    import os

    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    _preload(config)

    def one(mutant: Mutant) -> tuple[Mutant, str]:
        return mutant, run(mutant, _tests_for(mutant.path, config["tests"]), args.timeout)

    outcomes: dict[str, int] = {"killed": 0, "timeout": 0, "survived": 0, "equivalent": 0}
    with ThreadPoolExecutor(args.jobs) as pool:
        for done, (mutant, outcome) in enumerate(pool.map(one, sample), start=1):
            if outcome == "survived" and mutant.key in equivalent:
                outcome = "equivalent"
            outcomes[outcome] += 1
            print(f"[{done}/{len(sample)}] {outcome:<10} {mutant.key}", flush=True)
    caught = outcomes["killed"] + outcomes["timeout"]
    scored = len(sample) - outcomes["equivalent"]
    print(
        f"killed {outcomes['killed']}, timed out {outcomes['timeout']}, survived "
        f"{outcomes['survived']}, equivalent {outcomes['equivalent']}: score "
        f"{100 * caught / scored:.1f}% of {scored} non-equivalent mutants"
    )


if __name__ == "__main__":
    main()
