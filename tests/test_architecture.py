"""The layering rules of ``shared/design/architecture.md``, enforced.

- ``joins/`` imports the standard library only (no bytewax, rocksdict,
  prometheus_client, fastavro, duckdb, nor any other package of ours);
- ``state/`` and ``recovery/`` never import bytewax or prometheus_client, and the
  layers only import downwards (``dataflows`` > ``recovery`` > ``state`` > ``joins``);
- the packages imported are this repository's, not PyPI's unrelated
  ``dataflows`` or ``state`` distributions;
- no import circle anywhere: not between modules, nor between the rooms
  (subpackages) of ``dataflows/`` (import-linter's layers contract orders
  them; this test also covers modules inside a room, function-level imports
  included);
- ``dataflows/`` keeps its rooms: a few modules at the top, no family of
  modules told apart by a name prefix.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("joins", "state", "recovery", "dataflows")


def _imports(package: str) -> set[str]:
    names: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_join_core_imports_only_the_standard_library() -> None:
    foreign = {
        name
        for name in _imports("joins")
        if name != "joins" and name not in sys.stdlib_module_names
    }
    assert not foreign, f"joins/ must import the standard library only, found {sorted(foreign)}"


@pytest.mark.parametrize("package", ["state", "recovery"])
def test_only_dataflows_imports_the_engine_and_metrics(package: str) -> None:
    assert not _imports(package) & {"bytewax", "prometheus_client", "dataflows"}


def test_import_linter_contracts_hold() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_are_this_repositorys(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(ROOT), module.__file__


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _module_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)
    ours = {m for m in graph.modules if m.split(".")[0] in PACKAGES}
    return {m: set(graph.find_modules_directly_imported_by(m)) & ours for m in ours}


def _room(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "dataflows" and len(parts) > 1 else parts[0]


def test_no_import_circle_between_modules() -> None:
    assert _cycles(_module_graph()) == []


def test_no_import_circle_between_rooms() -> None:
    rooms: dict[str, set[str]] = {}
    for module, imported in _module_graph().items():
        edges = rooms.setdefault(_room(module), set())
        edges.update(_room(m) for m in imported if _room(m) != _room(module))
    assert _cycles(rooms) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_dataflows_top_level_keeps_few_modules_and_no_prefix_family() -> None:
    top = sorted(p.stem for p in (ROOT / "dataflows").glob("*.py") if p.stem != "__init__")
    assert len(top) <= 8, top
    prefixes = Counter(name.split("_")[0] for name in top if "_" in name)
    families = {prefix for prefix, n in prefixes.items() if n > 1}
    assert not families, f"module families by name prefix at the top of dataflows/: {families}"
    rooms = [p.parent.name for p in (ROOT / "dataflows").glob("*/__init__.py")]
    for room in rooms:
        doc = ast.get_docstring(ast.parse((ROOT / "dataflows" / room / "__init__.py").read_text()))
        assert doc, f"dataflows/{room}/__init__.py must say in its docstring what the room owns"
