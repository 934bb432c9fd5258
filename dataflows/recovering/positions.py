"""Replay (issue #4): the file sinks' snapshotted positions in a recovery store.

``streamjoin replay`` (:mod:`dataflows.cli.snapshots`) copies each output
file's prefix up to the position its sink partition snapshotted; the sinks
snapshot plain ints, read here without resolving any pickled global.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from recovery.partitions import read_partitions


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        msg = f"unexpected global {module}.{name}"
        raise pickle.UnpicklingError(msg)


def sink_positions(recovery_dir: str | os.PathLike[str]) -> dict[tuple[str, str], int]:
    """``(step_id, shard) -> byte position`` of every file-sink partition a resume
    of ``recovery_dir`` would load (the sinks snapshot plain ints)."""
    import io

    view = read_partitions(Path(recovery_dir))
    out: dict[tuple[str, str], int] = {}
    for (step, key), row in view.resumable_rows().items():
        if not step.endswith("_files") or row.data is None:
            continue
        try:
            value = _NoGlobals(io.BytesIO(row.data)).load()
        except (pickle.UnpicklingError, EOFError, ValueError):
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            out[(step, key)] = value
    return out
