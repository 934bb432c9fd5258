"""Build of streamjoin: the hot path compiled with mypyc, pure Python where it cannot be.

The metadata is ``pyproject.toml``'s; this file only adds the extension modules.
``pip install .`` and ``pip install -e .`` (``make install``) compile the modules
listed in ``dataflows/hotpath/status.py`` (``COMPILED_MODULES``) with mypyc and
the C compiler; an editable install builds them in place, beside their sources.
``make install`` rebuilds them (``python setup.py build_ext --inplace``) when a
source changed, since Python would otherwise keep importing the old extension.

The fallback is the pure-Python modules themselves, when

- ``STREAMJOIN_PURE_PYTHON=1`` is set (extensions left in place by an earlier
  build are removed, or they would still be imported),
- mypyc cannot be imported, or
- the C compiler fails or is missing;

each case says so on stderr, and a run says so at its start
(``dataflows.hotpath``).
"""

from __future__ import annotations

import ast
import glob
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError

ROOT = Path(__file__).resolve().parent
PURE_ENV = "STREAMJOIN_PURE_PYTHON"
#: mypy's checks that depend on which third-party stubs the build environment
#: has (pip builds in a fresh one, without rocksdict's): ``make check`` runs
#: them in full; here they must not stop a build.
MYPY_FLAGS = ["--no-warn-unused-ignores", "--no-warn-return-any", "--ignore-missing-imports"]
_COMPILER_ERRORS = (CCompilerError, CompileError, ExecError, LinkError, PlatformError, OSError)


def note(message: str) -> None:
    print(f"streamjoin build: {message}", file=sys.stderr)


def _status_literal(name: str) -> Any:
    """The literal assigned to ``name`` in ``dataflows/hotpath/status.py``, read
    from its text (the package cannot be imported before it is built)."""
    path = ROOT / "dataflows" / "hotpath" / "status.py"
    for node in ast.parse(path.read_text("utf-8")).body:
        if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return ast.literal_eval(node.value)
    msg = f"{path} defines no {name}"
    raise SystemExit(msg)


def compiled_modules() -> list[str]:
    return list(_status_literal("COMPILED_MODULES"))


#: The name of mypyc's shared library (``streamjoin_hotpath__mypyc.<abi>.so``).
GROUP: str = _status_literal("GROUP")


#: The SHA-256 of each compiled module's source, as mypyc read it, written
#: beside the in-place extensions (``dataflows.hotpath`` tells a stale one by it).
MANIFEST: str = _status_literal("MANIFEST")


def source_hashes(modules: list[str]) -> dict[str, str]:
    return {
        m: hashlib.sha256(ROOT.joinpath(*m.split(".")).with_suffix(".py").read_bytes()).hexdigest()
        for m in modules
    }


def in_place_extensions(modules: list[str]) -> list[str]:
    """The extension files of ``modules``, the shared library and the manifest of
    the sources they were built from, beside the sources."""
    found = glob.glob(str(ROOT / f"{GROUP}__mypyc.*")) + glob.glob(str(ROOT / MANIFEST))
    for name in modules:
        found += glob.glob(str(ROOT.joinpath(*name.split("."))) + ".*.so")
        found += glob.glob(str(ROOT.joinpath(*name.split("."))) + ".*.pyd")
    return found


def remove_in_place(modules: list[str], why: str) -> None:
    for path in in_place_extensions(modules):
        os.remove(path)
        note(f"removed {os.path.relpath(path, ROOT)} ({why})")


def extensions() -> list[Any]:
    modules = compiled_modules()
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        note(f"{PURE_ENV} is set: the hot path stays pure Python")
        remove_in_place(modules, "a pure-Python build was asked for")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        note(f"mypyc is not available ({exc}): the hot path stays pure Python")
        return []
    paths = [os.path.relpath(ROOT.joinpath(*m.split(".")).with_suffix(".py")) for m in modules]
    hashes = source_hashes(modules)
    built: list[Any] = mypycify([*MYPY_FLAGS, *paths], opt_level="3", group_name=GROUP)
    OptionalBuildExt.sources = hashes
    return built


class OptionalBuildExt(build_ext):
    """``build_ext`` that falls back to pure Python when the C compiler fails,
    and records which sources an in-place build compiled."""

    #: The compiled modules' source hashes when mypyc read them.
    sources: dict[str, str] = {}  # noqa: RUF012 - set once, before the command runs

    def run(self) -> None:
        try:
            super().run()
        except _COMPILER_ERRORS as exc:
            note(f"compiling the hot path failed ({exc}): it stays pure Python")
            self.extensions = []
            remove_in_place(compiled_modules(), "its build failed")
            return
        if self.inplace and self.extensions:
            with open(ROOT / MANIFEST, "w", encoding="utf-8") as f:
                json.dump(self.sources, f, indent=1, sort_keys=True)


if __name__ == "__main__":  # (setuptools' build backend runs it as the main module)
    setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
