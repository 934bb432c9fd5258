"""Where a run's settings come from, merged into one :class:`~dataflows.config.RunConfig`.

This is the one module that reads run parameters: from command-line flags (see
:mod:`dataflows.cli`) or from a config file with the same keys (TOML or JSON,
chosen by the file's suffix). Flags given explicitly win over the file's values.

Keys (flag ``--max-out-of-orderness`` is key ``max_out_of_orderness``; dashes
and underscores are interchangeable in a file):

``left``, ``right`` (a file, a directory or a glob; a list in a file),
``format`` (csv | jsonl | avro), ``key_field`` (comma-separated or a list),
``time_field``, ``time_unit`` (ms | s | us | iso), ``how``, ``lower``,
``upper``, ``max_out_of_orderness``, ``allowed_lateness``, ``idle_timeout``
(durations such as ``30m``, ``5s``, ``250ms`` or integer milliseconds),
``out``, ``output_format`` (jsonl | avro), ``processes``,
``workers_per_process``, ``state_dir``, ``state_memory`` (a size such as
``256MiB``, ``1GiB``, ``512M`` or integer bytes: the RocksDB memory budget of
each process, default 256MiB), ``shards``, ``batch_size``,
``heartbeat`` (a duration), ``epoch_interval`` (a duration), ``metrics_port``
(base port: process i serves ``/metrics`` on it + i; ``0``: ephemeral ports;
unset: 9464 + i when free), ``metrics_host`` (default 127.0.0.1),
``metrics_linger`` (a duration, default 30s: the most a scraped process waits
at the end for the scrape of its final counts; 0: never), ``recovery_dir``,
``backup_interval`` (a duration), ``resume_epoch`` (an epoch of the recovery
store to resume at, instead of its latest) and ``read_delay`` (a duration;
testing only)
(issue #4, :mod:`dataflows.recovering`; ``--snapshot-interval`` sets
``epoch_interval``).
"""

from __future__ import annotations

import glob
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dataflows.config.durations import parse_duration
from dataflows.config.run_config import (
    DEFAULT_SHARDS,
    DEFAULT_STATE_MEMORY_BYTES,
    InputConfig,
    RunConfig,
)
from dataflows.config.sizes import parse_size
from dataflows.errors import ConfigError
from joins import HOWS, JoinSpec, JoinSpecError

#: Every key a config file (or the flags) may set.
KEYS = (
    "left",
    "right",
    "format",
    "key_field",
    "time_field",
    "time_unit",
    "how",
    "lower",
    "upper",
    "max_out_of_orderness",
    "allowed_lateness",
    "idle_timeout",
    "out",
    "output_format",
    "processes",
    "workers_per_process",
    "state_dir",
    "state_memory",
    "shards",
    "batch_size",
    "heartbeat",
    "epoch_interval",
    "metrics_port",
    "metrics_host",
    "metrics_linger",
    "recovery_dir",
    "backup_interval",
    "read_delay",
    "resume_epoch",
)
_DURATIONS = (
    "lower",
    "upper",
    "max_out_of_orderness",
    "allowed_lateness",
    "idle_timeout",
    "heartbeat",
    "epoch_interval",
    "metrics_linger",
    "backup_interval",
    "read_delay",
)
DEFAULTS: dict[str, Any] = {
    "format": "jsonl",
    "key_field": "key",
    "time_field": "ts",
    "time_unit": "ms",
    "how": "left",
    "lower": "0",
    "upper": "30m",
    "max_out_of_orderness": "5s",
    "allowed_lateness": "0",
    "idle_timeout": "30s",
    "output_format": "jsonl",
    "processes": 1,
    "workers_per_process": 1,
    "state_dir": None,
    "state_memory": DEFAULT_STATE_MEMORY_BYTES,
    "shards": DEFAULT_SHARDS,
    "batch_size": 10_000,
    "heartbeat": "1s",
    "epoch_interval": "10s",
    "metrics_port": None,
    "metrics_host": "127.0.0.1",
    "metrics_linger": "30s",
    "recovery_dir": None,
    "backup_interval": "0",
    "read_delay": "0",
    "resume_epoch": 0,
}


def expand_paths(flag: str, patterns: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Absolute input paths for a file, a directory (its visible files, sorted) or a glob."""
    if isinstance(patterns, str):
        patterns = [patterns]
    found: list[str] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            files = sorted(
                str(p.resolve())
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".")
            )
        elif path.is_file():
            files = [str(path.resolve())]
        else:
            files = sorted(
                str(Path(p).resolve()) for p in glob.glob(str(path)) if os.path.isfile(p)
            )
        if not files:
            msg = f"--{flag} {pattern!r}: no such file, or a directory or glob with no files"
            raise ConfigError(msg)
        found.extend(f for f in files if f not in found)
    return tuple(found)


def read_config_file(path: str) -> dict[str, Any]:
    """The keys of a TOML (``.toml``) or JSON (``.json``) config file, normalised."""
    suffix = Path(path).suffix.lower()
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        msg = f"--config {path!r}: cannot read: {exc.strerror}"
        raise ConfigError(msg) from exc
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(raw.decode())
        elif suffix == ".json":
            data = json.loads(raw)
        else:
            msg = f"--config {path!r}: the file name must end in .toml or .json"
            raise ConfigError(msg)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"--config {path!r}: not valid {suffix[1:].upper()}: {exc}"
        raise ConfigError(msg) from exc
    if not isinstance(data, dict):
        msg = f"--config {path!r}: expected a table of keys, got {type(data).__name__}"
        raise ConfigError(msg)
    out = {}
    for key, value in data.items():
        norm = key.replace("-", "_")
        if norm not in KEYS:
            msg = f"--config {path!r}: unknown key {key!r}; known keys: {', '.join(KEYS)}"
            raise ConfigError(msg)
        out[norm] = value
    return out


def _parsed(name: str, value: object, parse: Callable[[str], int], example: str) -> int:
    """An int as is, or a string through ``parse`` (a duration, a size), with
    the flag's name in any error."""
    flag = f"--{name.replace('_', '-')}"
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return parse(value)
        except ConfigError as exc:
            msg = f"{flag}: {exc}"
            raise ConfigError(msg) from exc
    msg = f"{flag} must be {example}, got {value!r}"
    raise ConfigError(msg)


def _duration_ms(name: str, value: object) -> int:
    return _parsed(name, value, parse_duration, "a duration such as 30s or 5m")


def _size_bytes(name: str, value: object) -> int:
    return _parsed(name, value, parse_size, "a size such as 256MiB or 1GiB")


def _int(name: str, value: object) -> int:
    if isinstance(value, bool):
        value = repr(value)
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        msg = f"--{name.replace('_', '-')} must be an integer, got {value!r}"
        raise ConfigError(msg) from None


def build_config(values: Mapping[str, Any], config_file: str | None = None) -> RunConfig:
    """A :class:`RunConfig` from flag values (``None`` = not given) over a file's keys."""
    merged: dict[str, Any] = dict(DEFAULTS)
    if config_file:
        merged.update(read_config_file(config_file))
    merged.update({k: v for k, v in values.items() if v is not None and k in KEYS})
    for side in ("left", "right"):
        if not merged.get(side):
            msg = f"--{side} is required: a file, a directory or a glob of {side} input"
            raise ConfigError(msg)
    if not merged.get("out"):
        msg = "--out is required: the directory to write joined/, late/, invalid/ to"
        raise ConfigError(msg)
    keys = merged["key_field"]
    key_fields = tuple(k.strip() for k in keys.split(",")) if isinstance(keys, str) else tuple(keys)
    durations = {name: _duration_ms(name, merged[name]) for name in _DURATIONS}
    how = merged["how"]
    if how not in HOWS:
        msg = f"--how must be one of {', '.join(HOWS)}, got {how!r}"
        raise ConfigError(msg)
    try:
        spec = JoinSpec(
            lower_ms=durations["lower"],
            upper_ms=durations["upper"],
            how=how,
            max_out_of_orderness_ms=durations["max_out_of_orderness"],
            allowed_lateness_ms=durations["allowed_lateness"],
            idle_timeout_ms=durations["idle_timeout"],
        )
    except JoinSpecError as exc:
        raise ConfigError(str(exc)) from exc
    sides = {
        side: InputConfig(
            side=side,
            paths=expand_paths(side, merged[side]),
            format=merged["format"],
            key_fields=key_fields,
            time_field=str(merged["time_field"]),
            time_unit=merged["time_unit"],
        )
        for side in ("left", "right")
    }
    out_dir = os.path.abspath(str(merged["out"]))
    state_dir = merged["state_dir"]
    return RunConfig(
        left=sides["left"],
        right=sides["right"],
        spec=spec,
        out_dir=out_dir,
        output_format=str(merged["output_format"]),
        processes=_int("processes", merged["processes"]),
        workers_per_process=_int("workers_per_process", merged["workers_per_process"]),
        state_dir=os.path.abspath(state_dir) if state_dir else "",
        state_memory_bytes=_size_bytes("state_memory", merged["state_memory"]),
        shards=_int("shards", merged["shards"]),
        batch_size=_int("batch_size", merged["batch_size"]),
        heartbeat_ms=durations["heartbeat"],
        epoch_interval_ms=durations["epoch_interval"],
        metrics_port=(
            None if merged["metrics_port"] is None else _int("metrics_port", merged["metrics_port"])
        ),
        metrics_host=str(merged["metrics_host"]),
        metrics_linger_ms=durations["metrics_linger"],
        recovery_dir=os.path.abspath(merged["recovery_dir"]) if merged["recovery_dir"] else "",
        backup_interval_ms=durations["backup_interval"],
        read_delay_ms=durations["read_delay"],
        resume_epoch=_int("resume_epoch", merged["resume_epoch"]),
    )
