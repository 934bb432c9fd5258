"""The compiled hot path: the suite runs it compiled, and a stale build is named.

``make check`` runs ``python -m dataflows.hotpath`` too; this test makes sure the
*test process itself* imported the compiled modules, so that every other test
of the suite ran against the compiled build (unless ``STREAMJOIN_PURE_PYTHON``
says a pure-Python build was asked for).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataflows.hotpath import COMPILED_MODULES, PURE_ENV, HotPath, hot_path
from dataflows.hotpath.status import GROUP, MANIFEST, _is_stale, _manifest

ROOT = Path(__file__).resolve().parents[3]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


@pytest.mark.skipif(os.environ.get(PURE_ENV, "") not in ("", "0"), reason=f"{PURE_ENV} is set")
def test_the_suite_runs_the_compiled_hot_path() -> None:
    status = hot_path()
    assert status.is_compiled, status.describe()
    for name in COMPILED_MODULES:
        path = importlib.import_module(name).__file__ or ""
        assert path.endswith(SUFFIX), f"{name} was imported from {path}"
        assert Path(path).is_relative_to(ROOT), path
    assert list(ROOT.glob(f"{GROUP}__mypyc.*")), "mypyc's shared library is not beside the packages"
    assert (ROOT / MANIFEST).exists(), "the in-place build recorded no sources"


def test_setup_py_compiles_the_listed_modules() -> None:
    """setup.py reads the list from the status module's text: the same list."""
    out = subprocess.run(
        [sys.executable, "-c", "import runpy; print(runpy.run_path('setup.py', "
         "run_name='not_main')['compiled_modules']())"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(list(COMPILED_MODULES))


def test_a_module_whose_source_changed_since_its_build_is_stale(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    ext, source = pkg / f"mod{SUFFIX}", pkg / "mod.py"
    ext.write_bytes(b"")
    source.write_text("x = 1\n")
    built = {"pkg.mod": hashlib.sha256(b"x = 1\n").hexdigest()}
    (tmp_path / MANIFEST).write_text(json.dumps(built))
    manifest = _manifest("pkg.mod", str(ext))
    assert not _is_stale("pkg.mod", str(ext), manifest)
    source.write_text("x = 2\n")
    assert _is_stale("pkg.mod", str(ext), manifest)
    source.write_text("x = 1\n")  # saved again as it was (a git checkout): current
    assert not _is_stale("pkg.mod", str(ext), manifest)
    assert not _is_stale("pkg.other", str(ext), manifest)  # not in the manifest: a wheel's


def test_a_pure_module_is_reported_pure() -> None:
    status = hot_path(("joins.spec", "joins.joiner"))  # joins.spec is never compiled
    assert status.pure == ("joins.spec",)
    assert not status.is_compiled
    assert "pure Python (1 of 2 hot-path modules not compiled" in status.describe()
    assert status.to_json()["compiled"] is False


def test_descriptions_say_what_to_do() -> None:
    stale = HotPath(compiled=("a", "b"), pure=(), stale=("b",))
    assert "other sources than those beside them (b)" in stale.describe()
    assert "make install" in stale.describe()
    assert HotPath(("a",), (), ()).describe() == "compiled with mypyc (1 modules)"
    assert "all hot-path modules not compiled" in HotPath((), ("a",), ()).describe()
