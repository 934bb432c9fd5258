"""Every parameter of a run, as one frozen :class:`RunConfig` validated on construction.

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
``backup_interval`` (a duration) and ``read_delay`` (a duration; testing only)
(issue #4, :mod:`dataflows.recovering`; ``--snapshot-interval`` sets
``epoch_interval``).
"""

from __future__ import annotations

import glob
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dataflows.decode import FORMATS, TIME_UNITS, Format, TimeUnit
from dataflows.durations import parse_duration
from dataflows.errors import ConfigError
from dataflows.sizes import TIB, format_size, parse_size
from joins import HOWS, JoinSpec, JoinSpecError, Side
from state.options import DEFAULT_BUDGET_BYTES, MIN_BUDGET_BYTES

INPUT_FORMATS: tuple[str, ...] = FORMATS
OUTPUT_FORMATS = ("jsonl", "avro")
MAX_PROCESSES = 64
MAX_SHARDS = 4096
DEFAULT_SHARDS = 32
#: ``--state-memory``: a process's RocksDB budget (see :mod:`state.options`).
DEFAULT_STATE_MEMORY_BYTES = DEFAULT_BUDGET_BYTES
MIN_STATE_MEMORY_BYTES = MIN_BUDGET_BYTES
MAX_STATE_MEMORY_BYTES = TIB

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
}


@dataclass(frozen=True)
class InputConfig:
    """One side's input: its files (partitions, in order) and how to decode them."""

    side: Side
    paths: tuple[str, ...]
    format: Format
    key_fields: tuple[str, ...]
    time_field: str
    time_unit: TimeUnit

    def __post_init__(self) -> None:
        if not self.paths:
            msg = f"--{self.side}: no input files"
            raise ConfigError(msg)
        _choice("format", self.format, INPUT_FORMATS)
        _choice("time-unit", self.time_unit, TIME_UNITS)
        if not self.key_fields or any(not f for f in self.key_fields):
            msg = f"--key-field must name at least one field, got {self.key_fields!r}"
            raise ConfigError(msg)
        if not self.time_field:
            msg = "--time-field must not be empty"
            raise ConfigError(msg)

    def partition_names(self) -> tuple[str, ...]:
        """One source partition per file: ``side:index:basename``."""
        return tuple(f"{self.side}:{i}:{os.path.basename(p)}" for i, p in enumerate(self.paths))

    def to_json(self) -> dict[str, Any]:
        return {
            "paths": list(self.paths),
            "format": self.format,
            "key_fields": list(self.key_fields),
            "time_field": self.time_field,
            "time_unit": self.time_unit,
        }


@dataclass(frozen=True)
class RunConfig:
    """One run of the join: inputs, the join's spec, outputs and parallelism."""

    left: InputConfig
    right: InputConfig
    spec: JoinSpec
    out_dir: str
    output_format: str = "jsonl"
    processes: int = 1
    workers_per_process: int = 1
    state_dir: str = ""
    #: RocksDB's memory in each process: the block cache and memtables of all
    #: its shards (:meth:`state.options.RocksOptions.for_budget`).
    state_memory_bytes: int = DEFAULT_STATE_MEMORY_BYTES
    shards: int = DEFAULT_SHARDS
    batch_size: int = 10_000
    heartbeat_ms: int = 1000
    epoch_interval_ms: int = 10_000
    #: Base metrics port (process i serves on it + i; 0: ephemeral ports); None:
    #: the default base port when free, else ephemeral (see metrics_wiring).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    #: The most a process waits at the end for a scrape of its final counts.
    metrics_linger_ms: int = 30_000
    #: Recovery (issue #4, :mod:`dataflows.recovering`): the recovery directory
    #: ("" = off), how long Bytewax keeps superseded snapshots, and a test-only
    #: delay before each source read (the crash harness).
    recovery_dir: str = ""
    backup_interval_ms: int = 0
    read_delay_ms: int = 0

    def __post_init__(self) -> None:
        _choice("output-format", self.output_format, OUTPUT_FORMATS)
        _int_range("processes", self.processes, 1, MAX_PROCESSES)
        _int_range("workers-per-process", self.workers_per_process, 1, 64)
        _check_state_memory(self.state_memory_bytes)
        _int_range("shards", self.shards, 1, MAX_SHARDS)
        _int_range("batch-size", self.batch_size, 1, 1_000_000)
        _int_range("heartbeat", self.heartbeat_ms, 1, 3_600_000)
        _int_range("epoch-interval", self.epoch_interval_ms, 1, 86_400_000)
        _check_metrics(self)
        _int_range("backup-interval", self.backup_interval_ms, 0, 86_400_000)
        _int_range("read-delay", self.read_delay_ms, 0, 60_000)
        if not self.out_dir:
            msg = "--out is required: the directory to write joined/, late/, invalid/ to"
            raise ConfigError(msg)
        if not self.state_dir:
            object.__setattr__(self, "state_dir", os.path.join(self.out_dir, "state"))
        overlap = set(self.left.paths) & set(self.right.paths)
        if overlap:
            msg = f"a file cannot be both --left and --right: {sorted(overlap)[0]}"
            raise ConfigError(msg)

    @property
    def workers(self) -> int:
        """All Bytewax workers of the cluster."""
        return self.processes * self.workers_per_process

    def partitions(self) -> tuple[str, ...]:
        """All source partitions of both sides (the joiner waits for each)."""
        return self.left.partition_names() + self.right.partition_names()

    def to_json(self) -> dict[str, Any]:
        """A JSON-able copy (what the worker processes are started with)."""
        return {
            "left": self.left.to_json(),
            "right": self.right.to_json(),
            "spec": asdict(self.spec),
            "out_dir": self.out_dir,
            "output_format": self.output_format,
            "processes": self.processes,
            "workers_per_process": self.workers_per_process,
            "state_dir": self.state_dir,
            "state_memory_bytes": self.state_memory_bytes,
            "shards": self.shards,
            "batch_size": self.batch_size,
            "heartbeat_ms": self.heartbeat_ms,
            "epoch_interval_ms": self.epoch_interval_ms,
            "metrics_port": self.metrics_port,
            "metrics_host": self.metrics_host,
            "metrics_linger_ms": self.metrics_linger_ms,
            "recovery_dir": self.recovery_dir,
            "backup_interval_ms": self.backup_interval_ms,
            "read_delay_ms": self.read_delay_ms,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_json`."""
        sides = {
            side: InputConfig(
                side=side,
                paths=tuple(data[side]["paths"]),
                format=data[side]["format"],
                key_fields=tuple(data[side]["key_fields"]),
                time_field=data[side]["time_field"],
                time_unit=data[side]["time_unit"],
            )
            for side in ("left", "right")
        }
        try:
            spec = JoinSpec(**data["spec"])
        except JoinSpecError as exc:
            raise ConfigError(str(exc)) from exc
        return cls(
            left=sides["left"],
            right=sides["right"],
            spec=spec,
            **{k: data[k] for k in _SCALARS},
            **{k: data[k] for k in _METRICS_SCALARS if k in data},
            **{k: data[k] for k in _RECOVERY_SCALARS if k in data},
            **{k: data[k] for k in _STATE_SCALARS if k in data},
        )


_SCALARS = (
    "out_dir",
    "output_format",
    "processes",
    "workers_per_process",
    "state_dir",
    "shards",
    "batch_size",
    "heartbeat_ms",
    "epoch_interval_ms",
)


_METRICS_SCALARS = ("metrics_port", "metrics_host", "metrics_linger_ms")
_RECOVERY_SCALARS = ("recovery_dir", "backup_interval_ms", "read_delay_ms")
#: Optional in :meth:`RunConfig.from_json`: configs written before the key existed
#: (a recovery directory's) run with the default.
_STATE_SCALARS = ("state_memory_bytes",)


def _check_state_memory(value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"--state-memory must be an integer number of bytes, got {value!r}"
        raise ConfigError(msg)
    if value < MIN_STATE_MEMORY_BYTES:
        msg = (
            f"--state-memory {format_size(value)} is below the minimum of "
            f"{format_size(MIN_STATE_MEMORY_BYTES)} (RocksDB's block cache and memtables "
            f"of all shards of a process; default {format_size(DEFAULT_STATE_MEMORY_BYTES)})"
        )
        raise ConfigError(msg)
    if value > MAX_STATE_MEMORY_BYTES:
        msg = (
            f"--state-memory {format_size(value)} is above the maximum of "
            f"{format_size(MAX_STATE_MEMORY_BYTES)} per process"
        )
        raise ConfigError(msg)


def _check_metrics(cfg: RunConfig) -> None:
    if cfg.metrics_port is not None:
        _int_range("metrics-port", cfg.metrics_port, 0, 65535)
        last = cfg.metrics_port + cfg.processes - 1
        if cfg.metrics_port and last > 65535:
            msg = (
                f"--metrics-port {cfg.metrics_port}: process i serves on it + i, and "
                f"{cfg.processes} processes need ports up to {last} (above 65535)"
            )
            raise ConfigError(msg)
    if not isinstance(cfg.metrics_host, str) or not cfg.metrics_host:
        msg = f"--metrics-host must be an address such as 127.0.0.1, got {cfg.metrics_host!r}"
        raise ConfigError(msg)
    _int_range("metrics-linger", cfg.metrics_linger_ms, 0, 3_600_000)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        msg = f"--{name} must be one of {', '.join(allowed)}, got {value!r}"
        raise ConfigError(msg)


def _int_range(name: str, value: object, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        msg = f"--{name} must be an integer from {lo} to {hi}, got {value!r}"
        raise ConfigError(msg)


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
    )
