"""The compiled hot path: which modules mypyc compiles, and whether this process
runs them compiled.

``setup.py`` compiles the modules :data:`COMPILED_MODULES` names (it reads the
list from :mod:`dataflows.hotpath.status` without importing it) when mypyc and
a C compiler are at hand, and leaves the pure-Python modules in place
otherwise. :func:`hot_path` says which case this process is in; a run logs it
at its start and records it in ``run.json``. No engine here.
"""

from __future__ import annotations

from dataflows.hotpath.status import (
    COMPILED_MODULES,
    GROUP,
    MANIFEST,
    PURE_ENV,
    HotPath,
    hot_path,
)

__all__ = ["COMPILED_MODULES", "GROUP", "MANIFEST", "PURE_ENV", "HotPath", "hot_path"]
