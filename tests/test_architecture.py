"""The layering rules of ``shared/design/architecture.md``, enforced.

- ``joins/`` imports the standard library only (no bytewax, rocksdict,
  prometheus_client, fastavro, duckdb, nor any other package of ours);
- ``state/`` and ``recovery/`` never import bytewax or prometheus_client, and the
  layers only import downwards (``dataflows`` > ``recovery`` > ``state`` > ``joins``);
- the packages imported are this repository's, not PyPI's unrelated
  ``dataflows`` or ``state`` distributions.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

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
