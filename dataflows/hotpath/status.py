"""Which modules of the hot path run compiled (mypyc) in this process.

mypyc turns each module of :data:`COMPILED_MODULES` into an extension module
beside its source (``joins/joiner.cpython-311-x86_64-linux-gnu.so`` next to
``joins/joiner.py``; the code itself lives in one shared library,
``streamjoin_hotpath__mypyc...so``). Python's import system prefers the
extension, so a module is compiled exactly when its ``__file__`` is one.

That preference is also a trap: after an edit of ``joins/joiner.py``, the old
extension still runs until it is rebuilt (``make install`` rebuilds when a
source changed). An in-place build records the SHA-256 of each source it
compiled (:data:`MANIFEST`, beside the shared library); a module whose source
no longer matches is **stale**: a run warns about it and ``python -m
dataflows.hotpath`` (a step of ``make check``) fails. (Times would not do: a
``git checkout`` rewrites files whose content it leaves as it was.) An
installed wheel has no manifest and is never stale.

``setup.py`` reads :data:`COMPILED_MODULES`, :data:`GROUP` and :data:`MANIFEST`
from this file's text (it cannot import the package before it is built): keep
them literals.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import json
from dataclasses import dataclass
from pathlib import Path

#: The modules compiled by ``setup.py``: the join core, the state store and its
#: layout and codec, the input decoders and the joined-line encoder. Not
#: compiled: ``joins.spec`` (its checks of user input rely on Python's dynamic
#: types, which compiled code would turn into ``TypeError``), the errors (other
#: modules subclass them), and everything outside the per-event path.
COMPILED_MODULES: tuple[str, ...] = (
    "joins.counters",
    "joins.events",
    "joins.joiner",
    "joins.memory",
    "joins.store",
    "joins.watermark",
    "state.codec",
    "state.key_filter",
    "state.layout",
    "state.store",
    "dataflows.inputs.fields",
    "dataflows.inputs.lines",
    "dataflows.inputs.jsonl_format",
    "dataflows.inputs.csv_format",
    "dataflows.outputs.joined_lines",
)

#: Set to ``1`` at install time, the build leaves the hot path pure Python.
PURE_ENV = "STREAMJOIN_PURE_PYTHON"
#: mypyc's group of the compiled modules: its shared library is
#: ``<GROUP>__mypyc.<abi>.so`` beside the top-level packages (``setup.py``).
GROUP = "streamjoin_hotpath"
#: The in-place build's record of its sources: module -> SHA-256 of the source.
MANIFEST = "streamjoin_hotpath.sources.json"

_EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


@dataclass(frozen=True)
class HotPath:
    """The hot path's modules in this process, by how they run."""

    compiled: tuple[str, ...]
    pure: tuple[str, ...]
    #: Compiled, but from another source than the one beside it (edited since).
    stale: tuple[str, ...]

    @property
    def is_compiled(self) -> bool:
        """Every module compiled, none stale."""
        return not self.pure and not self.stale

    def describe(self) -> str:
        """One line for the start of a run and for ``python -m dataflows.hotpath``."""
        n = len(self.compiled) + len(self.pure)
        if self.is_compiled:
            return f"compiled with mypyc ({n} modules)"
        if self.stale:
            return (
                f"compiled, but {len(self.stale)} of {n} modules were built from other "
                f"sources than those beside them ({', '.join(self.stale)}): this process "
                "runs the old code; rebuild with `make install` (or reinstall the package)"
            )
        what = "all" if not self.compiled else f"{len(self.pure)} of {n}"
        return (
            f"pure Python ({what} hot-path modules not compiled: mypyc or a C compiler "
            f"was missing at install, or {PURE_ENV} was set); expect about 1.2x the "
            "CPU per event; install gcc and reinstall to compile"
        )

    def to_json(self) -> dict[str, object]:
        """For ``run.json``."""
        return {
            "compiled": self.is_compiled,
            "modules": len(self.compiled) + len(self.pure),
            "pure": list(self.pure),
            "stale": list(self.stale),
        }


def _is_extension(path: str) -> bool:
    return path.endswith(_EXTENSION_SUFFIXES)


def _manifest(name: str, path: str) -> dict[str, str]:
    """The sources module ``name`` (extension ``path``) was built from, by the
    manifest beside the top-level packages; empty without one."""
    root = Path(path).parents[name.count(".")]
    try:
        built: dict[str, str] = json.loads((root / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return built


def _is_stale(name: str, path: str, manifest: dict[str, str]) -> bool:
    """Whether the source beside module ``name``'s extension ``path`` differs
    from the one it was compiled from."""
    built = manifest.get(name)
    if built is None:
        return False
    for suffix in _EXTENSION_SUFFIXES:
        if path.endswith(suffix):
            source = Path(path[: -len(suffix)] + ".py")
            break
    else:
        return False
    try:
        return hashlib.sha256(source.read_bytes()).hexdigest() != built
    except OSError:  # no source beside it
        return False


def hot_path(modules: tuple[str, ...] = COMPILED_MODULES) -> HotPath:
    """Import ``modules`` and tell which run compiled, which pure, which stale."""
    compiled: list[str] = []
    pure: list[str] = []
    stale: list[str] = []
    manifest: dict[str, str] | None = None
    for name in modules:
        path = getattr(importlib.import_module(name), "__file__", None) or ""
        if _is_extension(path):
            compiled.append(name)
            if manifest is None:
                manifest = _manifest(name, path)
            if _is_stale(name, path, manifest):
                stale.append(name)
        else:
            pure.append(name)
    return HotPath(tuple(compiled), tuple(pure), tuple(stale))
