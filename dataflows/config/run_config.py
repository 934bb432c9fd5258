"""Every parameter of a run, as one frozen :class:`RunConfig` validated on construction.

:class:`InputConfig` is one side's input (its files, format, key and time
fields); :class:`RunConfig` adds the join's spec, the outputs, parallelism,
state, metrics and recovery. Both are built from settings by
:func:`dataflows.config.settings.build_config`; :meth:`RunConfig.to_json` and
:meth:`RunConfig.from_json` are what worker processes are started with. A value
out of range is a :class:`~dataflows.errors.ConfigError` naming the flag.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dataflows.config.kafka_config import KafkaRunConfig
from dataflows.config.sizes import TIB, format_size
from dataflows.errors import ConfigError
from dataflows.inputs import FORMATS, TIME_UNITS, Format, TimeUnit
from dataflows.kafka import parse_kafka_url
from joins import JoinSpec, JoinSpecError, Side
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

#: The input formats a Kafka side can have: its values' format.
KAFKA_INPUT_FORMATS = ("jsonl", "avro")


@dataclass(frozen=True)
class InputConfig:
    """One side's input: its files (partitions, in order) or its Kafka topic
    (``kafka``: a ``kafka://`` URL; partitions are the topic's), and how to
    decode them. A Kafka side's ``format`` is its values' format: ``jsonl``
    for JSON values, ``avro`` for Confluent Avro, read with ``reader_schema``
    (``None``: each record as its writer wrote it)."""

    side: Side
    paths: tuple[str, ...]
    format: Format
    key_fields: tuple[str, ...]
    time_field: str
    time_unit: TimeUnit
    kafka: str = ""
    reader_schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kafka:
            _check_kafka_side(self)
        elif not self.paths:
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
        """One source partition per file: ``side:index:basename`` (none for a
        Kafka side, whose partitions the brokers list)."""
        return tuple(f"{self.side}:{i}:{os.path.basename(p)}" for i, p in enumerate(self.paths))

    @property
    def value_format(self) -> str:
        """A Kafka side's value format (``json`` or ``confluent-avro``)."""
        return "confluent-avro" if self.format == "avro" else "json"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "paths": list(self.paths),
            "format": self.format,
            "key_fields": list(self.key_fields),
            "time_field": self.time_field,
            "time_unit": self.time_unit,
        }
        if self.kafka:
            out["kafka"] = self.kafka
            out["reader_schema"] = self.reader_schema
        return out


def _check_kafka_side(cfg: InputConfig) -> None:
    parse_kafka_url(cfg.kafka)
    if cfg.paths:
        msg = f"--{cfg.side}: a Kafka topic and files cannot be one side's input"
        raise ConfigError(msg)
    if cfg.format not in KAFKA_INPUT_FORMATS:
        msg = (f"--{cfg.side}-format {cfg.format!r}: a Kafka side's format is its values' "
               "format, jsonl (JSON values) or avro (Confluent Avro)")
        raise ConfigError(msg)
    if cfg.reader_schema is not None and cfg.format != "avro":
        msg = (f"--{cfg.side}-schema is a reader schema for Confluent Avro values; "
               f"--{cfg.side} is read as {cfg.format}")
        raise ConfigError(msg)


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
    #: Resume the recovery store at this epoch instead of its latest (0: the
    #: latest); what a refusal of a damaged store offers.
    resume_epoch: int = 0
    #: Off a terminal, a progress line is logged this often (on a terminal the
    #: live line is redrawn twice a second).
    progress_interval_ms: int = 10_000
    #: A side whose share of invalid records exceeds this fails the run (exit
    #: 1, after its outputs are written).
    max_invalid_fraction: float = 0.5
    #: Kafka inputs and outputs (issue 11, :mod:`dataflows.config.kafka_config`).
    kafka: KafkaRunConfig = field(default_factory=KafkaRunConfig)

    def __post_init__(self) -> None:
        _choice("output-format", self.output_format, OUTPUT_FORMATS)
        _int_range("processes", self.processes, 1, MAX_PROCESSES)
        _int_range("workers-per-process", self.workers_per_process, 1, 64)
        _check_state_memory(self.state_memory_bytes)
        _int_range("shards", self.shards, 1, MAX_SHARDS)
        _int_range("batch-size", self.batch_size, 1, 1_000_000)
        _int_range("heartbeat", self.heartbeat_ms, 1, 3_600_000)
        _int_range("snapshot-interval", self.epoch_interval_ms, 1, 86_400_000)
        _check_metrics(self)
        _int_range("backup-interval", self.backup_interval_ms, 0, 86_400_000)
        _int_range("read-delay", self.read_delay_ms, 0, 60_000)
        _int_range("resume-epoch", self.resume_epoch, 0, 10**12)
        _int_range("progress-interval", self.progress_interval_ms, 100, 86_400_000)
        _check_fraction("max-invalid-fraction", self.max_invalid_fraction)
        if self.resume_epoch and not self.recovery_dir:
            msg = "--resume-epoch needs --recovery-dir: the store whose epoch to resume at"
            raise ConfigError(msg)
        if not self.out_dir:
            msg = "--out is required: the directory to write joined/, late/, invalid/ to"
            raise ConfigError(msg)
        if not self.state_dir:
            object.__setattr__(self, "state_dir", os.path.join(self.out_dir, "state"))
        overlap = set(self.left.paths) & set(self.right.paths)
        if overlap:
            msg = f"a file cannot be both --left and --right: {sorted(overlap)[0]}"
            raise ConfigError(msg)
        _check_kafka(self)

    @property
    def workers(self) -> int:
        """All Bytewax workers of the cluster."""
        return self.processes * self.workers_per_process

    def partitions(self) -> tuple[str, ...]:
        """All file partitions of both sides (the joiner waits for each; a Kafka
        side's partitions are the topic's, listed by the flow)."""
        return self.left.partition_names() + self.right.partition_names()

    @property
    def kafka_sides(self) -> tuple[InputConfig, ...]:
        """The sides read from Kafka."""
        return tuple(s for s in (self.left, self.right) if s.kafka)

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
            "resume_epoch": self.resume_epoch,
            "progress_interval_ms": self.progress_interval_ms,
            "max_invalid_fraction": self.max_invalid_fraction,
            **({"kafka": self.kafka.to_json()} if self.kafka != KafkaRunConfig() else {}),
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
                kafka=data[side].get("kafka", ""),
                reader_schema=data[side].get("reader_schema"),
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
            **{k: data[k] for k in _CONSOLE_SCALARS if k in data},
            kafka=KafkaRunConfig.from_json(data.get("kafka")),
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
_RECOVERY_SCALARS = ("recovery_dir", "backup_interval_ms", "read_delay_ms", "resume_epoch")
#: Optional in :meth:`RunConfig.from_json`: configs written before the key existed
#: (a recovery directory's) run with the default.
_STATE_SCALARS = ("state_memory_bytes",)
_CONSOLE_SCALARS = ("progress_interval_ms", "max_invalid_fraction")


def _check_fraction(name: str, value: object) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0.0 <= value <= 1.0
    ):
        msg = f"--{name} must be a fraction from 0 to 1 (0.5: half), got {value!r}"
        raise ConfigError(msg)


def _check_kafka(cfg: RunConfig) -> None:
    kafka = cfg.kafka
    avro_in = any(s.format == "avro" for s in cfg.kafka_sides)
    avro_out = bool(kafka.outputs) and cfg.output_format == "avro"
    if (avro_in or avro_out) and not kafka.registry:
        what = "Confluent Avro inputs" if avro_in else "Avro outputs to Kafka"
        msg = f"{what} need a Schema Registry: --schema-registry URL"
        raise ConfigError(msg)
    if kafka.until_end and not cfg.kafka_sides:
        msg = "--until-end is for Kafka inputs (kafka://...); file inputs always end"
        raise ConfigError(msg)
    if kafka.outputs and kafka.delivery == "transactional":
        # Each epoch's transaction stays open until the next snapshot (sinks/kafka.py).
        timeout = kafka.transaction_timeout_ms()
        if 2 * cfg.epoch_interval_ms >= timeout:
            msg = (f"--snapshot-interval {cfg.epoch_interval_ms} ms: a transaction stays open "
                   f"for up to two intervals, which must stay below the Kafka setting "
                   f"transaction.timeout.ms ({timeout} ms); shorten the interval or raise it")
            raise ConfigError(msg)
    topics = [url for _, url in kafka.outputs] + [s.kafka for s in cfg.kafka_sides]
    names = [t.rsplit("/", 1)[-1] for t in topics]
    for name in names:
        if names.count(name) > 1:
            msg = f"topic {name!r} is named twice among the Kafka inputs and outputs"
            raise ConfigError(msg)


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
