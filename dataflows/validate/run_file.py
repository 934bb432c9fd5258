"""What ``validate`` needs from a run's ``run.json``: the join's spec and, per
side, the input files and the settings they were decoded with.

The settings are read from ``run.json`` as the run recorded them (format, key
fields, time field, time unit) and checked here, not by the run's own config
classes: validate interprets the inputs by itself (see
:mod:`dataflows.validate.records`). Partition names follow the run's
convention, ``side:index:basename``, so that dead letters and joined rows can
be matched by partition.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataflows.errors import ValidationError
from joins import SIDES, JoinSpec, JoinSpecError, Side

FORMATS = ("jsonl", "csv", "avro")
TIME_UNITS = ("ms", "s", "us", "iso")


@dataclass(frozen=True)
class SideInputs:
    """One side's input files and how the run was told to read them."""

    side: Side
    paths: tuple[str, ...]
    format: str
    key_fields: tuple[str, ...]
    time_field: str
    time_unit: str

    def partition(self, index: int) -> str:
        """The run's name for the source partition of ``paths[index]``."""
        return f"{self.side}:{index}:{os.path.basename(self.paths[index])}"


@dataclass(frozen=True)
class RunFile:
    """``run.json``, parsed: the whole document, the spec and both sides."""

    doc: dict[str, Any]
    spec: JoinSpec
    sides: tuple[SideInputs, SideInputs]


def _side(run_dir: Path, side: Side, conf: Any) -> SideInputs:
    fmt = conf["format"]
    keys = tuple(conf.get("key_fields", ("key",)))
    time_field = conf.get("time_field", "ts")
    unit = conf.get("time_unit", "ms")
    if fmt not in FORMATS:
        msg = f"inputs.{side}.format {fmt!r} is not one of {', '.join(FORMATS)}"
        raise ValueError(msg)
    if unit not in TIME_UNITS:
        msg = f"inputs.{side}.time_unit {unit!r} is not one of {', '.join(TIME_UNITS)}"
        raise ValueError(msg)
    if not keys or not all(isinstance(k, str) and k for k in keys):
        msg = f"inputs.{side}.key_fields must be non-empty names, got {list(keys)!r}"
        raise ValueError(msg)
    if not isinstance(time_field, str) or not time_field:
        msg = f"inputs.{side}.time_field must be a non-empty name, got {time_field!r}"
        raise ValueError(msg)
    paths = tuple(
        str(p if Path(p).is_absolute() or not (run_dir / p).exists() else run_dir / p)
        for p in conf["paths"]
    )
    return SideInputs(side, paths, fmt, keys, time_field, unit)


def load_run(run_dir: Path) -> RunFile:
    """Read and check ``run_dir/run.json`` (a :class:`ValidationError` says what
    is missing or malformed)."""
    path = run_dir / "run.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        msg = f"{run_dir} is not a run directory: no run.json"
        raise ValidationError(msg) from exc
    except (OSError, ValueError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise ValidationError(msg) from exc
    try:
        conf_spec = doc["spec"]
        spec = JoinSpec(
            lower_ms=int(conf_spec["lower_ms"]),
            upper_ms=int(conf_spec["upper_ms"]),
            how=conf_spec["how"],
            max_out_of_orderness_ms=int(conf_spec.get("max_out_of_orderness_ms", 5_000)),
            allowed_lateness_ms=int(conf_spec.get("allowed_lateness_ms", 0)),
            idle_timeout_ms=int(conf_spec.get("idle_timeout_ms", 30_000)),
        )
        left, right = (_side(run_dir, side, doc["inputs"][side]) for side in SIDES)
    except (KeyError, TypeError, ValueError, JoinSpecError) as exc:
        msg = f"{path}: missing or malformed spec/inputs ({type(exc).__name__}: {exc})"
        raise ValidationError(msg) from exc
    return RunFile(doc, spec, (left, right))
