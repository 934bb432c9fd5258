"""Where a run's settings come from, merged into one :class:`~dataflows.config.RunConfig`.

This is the one module that reads run parameters. Each setting can come from
four sources; the first that sets it wins:

1. a command-line flag (``--max-out-of-orderness 10s``);
2. an environment variable ``STREAMJOIN_<NAME>`` (``STREAMJOIN_MAX_OUT_OF_ORDERNESS=10s``;
   an empty variable counts as unset);
3. a config file (``--config FILE`` or ``STREAMJOIN_CONFIG``; TOML, or JSON
   by its suffix) with the same names (``max_out_of_orderness = "10s"``;
   dashes and underscores are interchangeable); paths in it (``left``,
   ``right``, ``out``, ``state_dir``, ``recovery_dir``) are relative to the
   file's folder;
4. the default.

:func:`resolve` says where each value came from (``streamjoin run
--print-config`` shows it, :func:`format_settings`).

Names: ``left``, ``right`` (a file, a directory or a glob; a list in a file),
``format`` (csv | jsonl | avro; by default taken from the files' extension:
``.csv``, ``.jsonl``/``.ndjson``/``.json``, ``.avro``), ``key_field``
(comma-separated or a list), ``time_field``, ``time_unit`` (ms | s | us |
iso); each of these four also per side, ``left_format``, ``right_key_field``
and so on, which wins over the shared one given by the same or a lower source;
``how``, ``lower``, ``upper``, ``max_out_of_orderness``, ``allowed_lateness``,
``idle_timeout`` (durations such as ``30m``, ``5s``, ``250ms``; a bare number
other than ``0`` is refused as ambiguous), ``out``, ``output_format`` (jsonl |
avro), ``processes``, ``workers_per_process``, ``state_dir``, ``state_memory``
(a size such as ``256MiB``, ``1GiB``, ``512M`` or integer bytes: the RocksDB
memory budget of each process, default 256MiB), ``shards``, ``batch_size``,
``heartbeat`` (a duration), ``snapshot_interval`` (a duration; the file key
``epoch_interval`` is accepted for it), ``metrics_port`` (base port: process i
serves ``/metrics`` on it + i; ``0``: ephemeral ports; unset: 9464 + i when
free), ``metrics_host`` (default 127.0.0.1), ``metrics_linger`` (a duration,
default 30s: the most a scraped process waits at the end for the scrape of its
final counts; 0: never), ``recovery_dir``, ``backup_interval`` (a duration),
``resume_epoch`` (an epoch of the recovery store to resume at, instead of its
latest), ``read_delay`` (a duration; testing only), ``progress_interval`` (a
duration, default 10s: how often a run off a terminal logs its progress) and
``max_invalid_fraction`` (default 0.5: a side with a larger share of invalid
records fails the run).

Kafka (issue 11, :mod:`dataflows.config.kafka_config`): ``left`` and ``right``
may be a ``kafka://HOST:PORT[,HOST:PORT]/TOPIC`` URL (the side's format is then
its values' format: ``jsonl`` for JSON values, the default, or ``avro`` for
Confluent Avro); ``left_schema`` and ``right_schema`` (an Avro reader schema
file for a Confluent Avro side; without one, the latest schema of the topic's
registry subject is read at start); ``schema_registry`` (URL); ``until_end``
(a boolean); ``out_kafka`` (``kafka://.../PREFIX``: the three outputs to
``PREFIX.joined``, ``PREFIX.late``, ``PREFIX.invalid``) and ``out_joined``,
``out_late``, ``out_invalid`` (``kafka://.../TOPIC`` each, winning over
``out_kafka``); ``kafka_delivery`` (``transactional`` or ``at-least-once``).
librdkafka settings come from a config file's ``[kafka]`` table and from
``kafka_config`` (``--kafka-config KEY=VALUE``, repeatable; in the environment
``STREAMJOIN_KAFKA_CONFIG`` with one ``KEY=VALUE`` a line), which wins key by
key. Secret values are never shown (``***``).
"""

from __future__ import annotations

import difflib
import glob
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataflows.config.durations import format_duration, parse_duration
from dataflows.config.kafka_config import OUTPUT_KINDS, KafkaRunConfig
from dataflows.config.run_config import (
    DEFAULT_SHARDS,
    DEFAULT_STATE_MEMORY_BYTES,
    InputConfig,
    RunConfig,
)
from dataflows.config.sizes import format_size, parse_size
from dataflows.errors import ConfigError
from dataflows.inputs import Format
from dataflows.kafka import KafkaSettings, is_kafka_url, output_topics, parse_kafka_url
from dataflows.kafka.settings import REDACTED, is_secret
from joins import HOWS, SIDES, JoinSpec, JoinSpecError, Side

#: Settings every input side has, each also settable per side (``left_<name>``).
SIDE_SETTINGS = ("format", "key_field", "time_field", "time_unit")
#: Paths, which a config file gives relative to its own folder.
_PATHS = ("left", "right", "out", "state_dir", "recovery_dir", "left_schema", "right_schema")
#: Every setting a flag, an environment variable or a config file may set.
KEYS = (
    "left",
    "right",
    "format",
    "key_field",
    "time_field",
    "time_unit",
    *(f"{side}_{name}" for side in SIDES for name in SIDE_SETTINGS),
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
    "snapshot_interval",
    "metrics_port",
    "metrics_host",
    "metrics_linger",
    "recovery_dir",
    "backup_interval",
    "read_delay",
    "resume_epoch",
    "progress_interval",
    "max_invalid_fraction",
    "left_schema",
    "right_schema",
    "schema_registry",
    "until_end",
    "out_kafka",
    "out_joined",
    "out_late",
    "out_invalid",
    "kafka_delivery",
    "kafka_config",
)
#: The config file's table of librdkafka settings (``[kafka]``), not a setting.
KAFKA_TABLE = "kafka"
#: Old names still read from config files (and flag destinations).
ALIASES = {"epoch_interval": "snapshot_interval"}
_DURATIONS = (
    "lower",
    "upper",
    "max_out_of_orderness",
    "allowed_lateness",
    "idle_timeout",
    "heartbeat",
    "snapshot_interval",
    "metrics_linger",
    "backup_interval",
    "read_delay",
    "progress_interval",
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
    "snapshot_interval": "10s",
    "metrics_port": None,
    "metrics_host": "127.0.0.1",
    "metrics_linger": "30s",
    "recovery_dir": None,
    "backup_interval": "0",
    "read_delay": "0",
    "resume_epoch": 0,
    "progress_interval": "10s",
    "max_invalid_fraction": 0.5,
    "left_schema": None,
    "right_schema": None,
    "schema_registry": None,
    "until_end": False,
    "out_kafka": None,
    "out_joined": None,
    "out_late": None,
    "out_invalid": None,
    "kafka_delivery": None,
    "kafka_config": None,
}
#: Input formats by file extension (when no format is set).
EXTENSION_FORMATS: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".avro": "avro",
}
ENV_PREFIX = "STREAMJOIN_"
#: ``STREAMJOIN_*`` variables that are not settings of a run.
_ENV_OTHER = ("STREAMJOIN_CONFIG", "STREAMJOIN_LOG_LEVEL", "STREAMJOIN_KAFKA_SECRETS")
#: What the sources are called in :class:`Setting`'s ``origin``; a higher rank wins.
_RANK = {"default": 0, "extension": 0, "file": 1, "env": 2, "flag": 3}


def flag_of(name: str) -> str:
    """The flag that sets a setting, as the user types it (``--snapshot-interval``)."""
    return "--" + ALIASES.get(name, name).replace("_", "-")


def env_of(name: str) -> str:
    """The environment variable that sets a setting."""
    return ENV_PREFIX + ALIASES.get(name, name).upper()


@dataclass(frozen=True)
class Setting:
    """A resolved setting: its value as given, and where it came from
    (``flag --upper``, ``env STREAMJOIN_UPPER``, ``file join.toml``, ``default``)."""

    value: Any
    origin: str

    @property
    def rank(self) -> int:
        return _RANK[self.origin.split(" ", 1)[0]]


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
    """The settings of a TOML (``.toml``) or JSON (``.json``) config file, with
    canonical names and paths made absolute against the file's folder."""
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
        msg = f"--config {path!r}: expected a table of settings, got {type(data).__name__}"
        raise ConfigError(msg)
    base = Path(path).resolve().parent
    out = {}
    for key, value in data.items():
        norm = key.replace("-", "_")
        norm = ALIASES.get(norm, norm)
        if norm == KAFKA_TABLE:
            out[KAFKA_TABLE] = KafkaSettings.from_section(value).values
            continue
        if norm not in KEYS:
            msg = f"--config {path!r}: unknown setting {key!r}; {_did_you_mean(norm)}"
            raise ConfigError(msg)
        out[norm] = _relative_to(base, value) if norm in _PATHS else value
    return out


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, KEYS, n=1)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(KEYS)}"


def _relative_to(base: Path, value: Any) -> Any:
    if isinstance(value, str) and value and not is_kafka_url(value):
        return str(base / Path(value).expanduser())
    if isinstance(value, list):
        return [_relative_to(base, v) for v in value]
    return value


def read_environ(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The settings in ``STREAMJOIN_*`` variables, and a warning for each such
    variable that names no setting (a typo would otherwise pass unseen)."""
    names = {env_of(k): k for k in KEYS}
    found: dict[str, str] = {}
    warnings: list[str] = []
    for var, value in sorted(environ.items()):
        if not var.startswith(ENV_PREFIX) or var in _ENV_OTHER or var.startswith(
            ENV_PREFIX + "TEST_"
        ):
            continue
        key = names.get(var)
        if key is None:
            guess = difflib.get_close_matches(var, list(names), n=1)
            hint = f"did you mean {guess[0]}?" if guess else "see streamjoin run --help"
            warnings.append(f"ignoring {var}: no such setting; {hint}")
        elif value != "":
            found[key] = value
    return found, warnings


def resolve(
    values: Mapping[str, Any],
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Setting], list[str]]:
    """Every setting with its value and origin: flags (``values``; ``None`` = not
    given) over the environment over ``config_file`` (or ``STREAMJOIN_CONFIG``)
    over the defaults. Returns warnings (unknown variables) too."""
    env = os.environ if environ is None else environ
    resolved: dict[str, Setting] = {k: Setting(v, "default") for k, v in DEFAULTS.items()}
    config_file = config_file or env.get("STREAMJOIN_CONFIG") or None
    if config_file:
        name = os.path.relpath(config_file) if not config_file.startswith("..") else config_file
        for key, value in read_config_file(config_file).items():
            # The [kafka] table rides along under its own name (see _kafka_config).
            resolved[key] = Setting(value, f"file {name}")
    env_values, warnings = read_environ(env)
    for key, value in env_values.items():
        resolved[key] = Setting(value, f"env {env_of(key)}")
    for key, value in values.items():
        key = ALIASES.get(key, key)
        if value is not None and key in KEYS:
            resolved[key] = Setting(value, f"flag {flag_of(key)}")
    return resolved, warnings


def _side_setting(resolved: Mapping[str, Setting], side: Side, name: str) -> Setting:
    """A side's ``name``: its own setting unless the shared one comes from a higher
    source (``--key-field`` on the command line beats ``left_key_field`` in a file)."""
    own = resolved.get(f"{side}_{name}")
    shared = resolved.get(name) or Setting(DEFAULTS[name], "default")
    return own if own is not None and own.rank >= shared.rank else shared


def _format_of(side: Side, setting: Setting, paths: tuple[str, ...]) -> Setting:
    """A side's input format: as set, else by the files' extension, else jsonl."""
    if setting.origin != "default":
        return setting
    known = {EXTENSION_FORMATS[e] for e in (Path(p).suffix.lower() for p in paths)
             if e in EXTENSION_FORMATS}
    if len(known) > 1:
        msg = (f"--{side} mixes input formats by extension ({', '.join(sorted(known))}); "
               f"set --{side}-format")
        raise ConfigError(msg)
    if known:
        return Setting(known.pop(), f"extension {Path(paths[0]).suffix.lower()}")
    return setting


def _key_fields(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(k.strip() for k in value.split(","))
    if isinstance(value, list | tuple):
        return tuple(str(k) for k in value)
    msg = f"--key-field must be a name or a comma-separated list of names, got {value!r}"
    raise ConfigError(msg)


#: Join-spec field names as the user sets them, for the spec's messages.
_SPEC_FLAGS = {
    "max_out_of_orderness_ms": "--max-out-of-orderness",
    "allowed_lateness_ms": "--allowed-lateness",
    "idle_timeout_ms": "--idle-timeout",
    "lower_ms": "--lower",
    "upper_ms": "--upper",
    "how": "--how",
}


def _spec_message(text: str) -> str:
    for name, flag in _SPEC_FLAGS.items():
        text = text.replace(name, flag)
    return text


def _parsed(name: str, value: object, parse: Callable[[str], int], example: str) -> int:
    """An int as is, or a string through ``parse`` (a duration, a size), with
    the flag's name in any error."""
    flag = flag_of(name)
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
    if isinstance(value, int) and not isinstance(value, bool) and value != 0:
        # A config file's bare number: as ambiguous as one on the command line.
        value = str(value)
    return _parsed(name, value, parse_duration, "a duration such as 30s or 5m")


def _size_bytes(name: str, value: object) -> int:
    return _parsed(name, value, parse_size, "a size such as 256MiB or 1GiB")


def _int(name: str, value: object) -> int:
    if isinstance(value, bool):
        value = repr(value)
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        msg = f"{flag_of(name)} must be an integer, got {value!r}"
        raise ConfigError(msg) from None


def _fraction(name: str, value: object) -> float:
    if isinstance(value, bool):
        value = repr(value)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        msg = f"{flag_of(name)} must be a fraction from 0 to 1 (0.5: half), got {value!r}"
        raise ConfigError(msg) from None
def _kafka_input(side: Side, value: Any) -> str | None:
    """The ``kafka://`` URL of a side given as one, else ``None``."""
    values = [value] if isinstance(value, str) else list(value or [])
    urls = [v for v in values if isinstance(v, str) and is_kafka_url(v)]
    if not urls:
        return None
    if len(values) > 1:
        msg = f"--{side}: one Kafka topic, or files; got {len(values)} inputs with a kafka:// URL"
        raise ConfigError(msg)
    return str(parse_kafka_url(urls[0]))


def _reader_schema(side: Side, path: Any) -> dict[str, Any] | None:
    """The Avro reader schema in the file ``--<side>-schema`` names."""
    if path is None:
        return None
    import fastavro

    flag = f"--{side}-schema"
    try:
        schema = json.loads(Path(str(path)).read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"{flag} {path!r}: cannot read: {exc.strerror}"
        raise ConfigError(msg) from exc
    except ValueError as exc:
        msg = f"{flag} {path!r}: not JSON: {exc}"
        raise ConfigError(msg) from exc
    try:
        fastavro.parse_schema(schema)
    except Exception as exc:  # fastavro raises several types on bad schemas
        msg = f"{flag} {path!r}: not a valid Avro schema: {exc}"
        raise ConfigError(msg) from exc
    if not isinstance(schema, dict) or schema.get("type") != "record":
        msg = f"{flag} {path!r}: the reader schema must be an Avro record"
        raise ConfigError(msg)
    return schema


def _input_config(resolved: Mapping[str, Setting], side: Side) -> InputConfig:
    own = {name: _side_setting(resolved, side, name) for name in SIDE_SETTINGS}
    schema_path = resolved[f"{side}_schema"].value
    kafka = _kafka_input(side, resolved[side].value)
    if kafka is not None:
        return InputConfig(
            side=side,
            paths=(),
            format=own["format"].value,
            key_fields=_key_fields(own["key_field"].value),
            time_field=str(own["time_field"].value),
            time_unit=own["time_unit"].value,
            kafka=kafka,
            reader_schema=_reader_schema(side, schema_path),
        )
    if schema_path is not None:
        msg = f"--{side}-schema is for a Kafka topic of Confluent Avro values (--{side} kafka://...)"
        raise ConfigError(msg)
    paths = expand_paths(side, resolved[side].value)
    fmt = _format_of(side, own["format"], paths)
    return InputConfig(
        side=side,
        paths=paths,
        format=fmt.value,
        key_fields=_key_fields(own["key_field"].value),
        time_field=str(own["time_field"].value),
        time_unit=own["time_unit"].value,
    )


def _bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    msg = f"{flag_of(name)} must be true or false, got {value!r}"
    raise ConfigError(msg)


def _kafka_pairs(value: Any) -> list[str]:
    """``kafka_config`` as ``KEY=VALUE`` strings: a list (flags, a file), or the
    environment's text with one pair a line."""
    if value is None:
        return []
    if isinstance(value, str):
        return [line for line in value.splitlines() if line.strip()]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    msg = "--kafka-config must be KEY=VALUE pairs (kafka_config = [\"k=v\"] in a file)"
    raise ConfigError(msg)


def kafka_settings(resolved: Mapping[str, Setting]) -> list[tuple[str, str, str]]:
    """``(key, value, origin)`` of every librdkafka setting: the config file's
    ``[kafka]`` table, overridden key by key by ``kafka_config``."""
    rows: dict[str, tuple[str, str]] = {}
    table = resolved.get(KAFKA_TABLE)
    if table is not None:
        for key, value in KafkaSettings.from_section(table.value).values.items():
            rows[key] = (value, table.origin)
    pairs = resolved.get("kafka_config")
    if pairs is not None and pairs.value is not None:
        for key, value in KafkaSettings.from_pairs(_kafka_pairs(pairs.value)).values.items():
            rows[key] = (value, pairs.origin)
    return [(k, v, o) for k, (v, o) in sorted(rows.items())]


def _kafka_outputs(merged: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    outputs: dict[str, str] = {}
    if merged["out_kafka"]:
        for kind, url in output_topics(parse_kafka_url(str(merged["out_kafka"]))).items():
            outputs[kind] = str(url)
    for kind in OUTPUT_KINDS:
        one = merged[f"out_{kind}"]
        if one:
            outputs[kind] = str(parse_kafka_url(str(one)))
    return tuple(sorted(outputs.items()))


def _kafka_config(resolved: Mapping[str, Setting]) -> KafkaRunConfig:
    merged = {k: s.value for k, s in resolved.items()}
    delivery = merged["kafka_delivery"]
    return KafkaRunConfig(
        settings=KafkaSettings({k: v for k, v, _ in kafka_settings(resolved)}),
        registry=str(merged["schema_registry"] or "").rstrip("/"),
        until_end=_bool("until_end", merged["until_end"]),
        delivery=str(delivery or "transactional"),
        delivery_given=delivery is not None,
        outputs=_kafka_outputs(merged),
    )


def build_config(
    values: Mapping[str, Any],
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunConfig:
    """A :class:`RunConfig` from flag values (``None`` = not given) over the
    environment (``os.environ`` unless given) over a config file over the defaults."""
    resolved, _ = resolve(values, config_file, environ)
    return config_of(resolved)


def config_of(resolved: Mapping[str, Setting]) -> RunConfig:
    """The :class:`RunConfig` of resolved settings (see :func:`resolve`)."""
    merged = {k: s.value for k, s in resolved.items()}
    for side in SIDES:
        if not merged.get(side):
            msg = f"--{side} is required: a file, a directory or a glob of {side} input"
            raise ConfigError(msg)
    if not merged.get("out"):
        msg = "--out is required: the directory to write joined/, late/, invalid/ to"
        raise ConfigError(msg)
    if is_kafka_url(str(merged["out"])):
        msg = ("--out is the run's local directory (run.json, counters, outputs that are "
               "files); send the outputs to Kafka with --out-kafka kafka://HOST:PORT/PREFIX")
        raise ConfigError(msg)
    durations = {name: _duration_ms(name, merged[name]) for name in _DURATIONS}
    if durations["lower"] > durations["upper"]:
        msg = (
            f"--lower {format_duration(durations['lower'])} must not exceed --upper "
            f"{format_duration(durations['upper'])}: the interval would be empty"
        )
        raise ConfigError(msg)
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
        raise ConfigError(_spec_message(str(exc))) from exc
    left, right = (_input_config(resolved, side) for side in SIDES)
    out_dir = os.path.abspath(str(merged["out"]))
    state_dir = merged["state_dir"]
    return RunConfig(
        left=left,
        right=right,
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
        epoch_interval_ms=durations["snapshot_interval"],
        metrics_port=(
            None if merged["metrics_port"] is None else _int("metrics_port", merged["metrics_port"])
        ),
        metrics_host=str(merged["metrics_host"]),
        metrics_linger_ms=durations["metrics_linger"],
        recovery_dir=os.path.abspath(merged["recovery_dir"]) if merged["recovery_dir"] else "",
        backup_interval_ms=durations["backup_interval"],
        read_delay_ms=durations["read_delay"],
        resume_epoch=_int("resume_epoch", merged["resume_epoch"]),
        progress_interval_ms=durations["progress_interval"],
        max_invalid_fraction=_fraction("max_invalid_fraction", merged["max_invalid_fraction"]),
        kafka=_kafka_config(resolved),
    )


def effective_settings(
    resolved: Mapping[str, Setting], cfg: RunConfig
) -> list[tuple[str, Any, str]]:
    """``(name, value, origin)`` of every setting as the run will use it (paths
    absolute and expanded, durations and sizes in their shortest form), each
    side's input settings resolved, the format by extension."""
    spec = cfg.spec
    used: dict[str, Any] = {
        "how": spec.how,
        "lower": format_duration(spec.lower_ms),
        "upper": format_duration(spec.upper_ms),
        "max_out_of_orderness": format_duration(spec.max_out_of_orderness_ms),
        "allowed_lateness": format_duration(spec.allowed_lateness_ms),
        "idle_timeout": format_duration(spec.idle_timeout_ms),
        "out": cfg.out_dir,
        "output_format": cfg.output_format,
        "processes": cfg.processes,
        "workers_per_process": cfg.workers_per_process,
        "state_dir": cfg.state_dir,
        "state_memory": format_size(cfg.state_memory_bytes),
        "shards": cfg.shards,
        "batch_size": cfg.batch_size,
        "heartbeat": format_duration(cfg.heartbeat_ms),
        "snapshot_interval": format_duration(cfg.epoch_interval_ms),
        "metrics_port": cfg.metrics_port,
        "metrics_host": cfg.metrics_host,
        "metrics_linger": format_duration(cfg.metrics_linger_ms),
        "recovery_dir": cfg.recovery_dir or None,
        "backup_interval": format_duration(cfg.backup_interval_ms),
        "read_delay": format_duration(cfg.read_delay_ms),
        "resume_epoch": cfg.resume_epoch or None,
        "progress_interval": format_duration(cfg.progress_interval_ms),
        "max_invalid_fraction": cfg.max_invalid_fraction,
        "left_schema": resolved["left_schema"].value,
        "right_schema": resolved["right_schema"].value,
        "schema_registry": cfg.kafka.registry or None,
        "until_end": cfg.kafka.until_end,
        "out_kafka": resolved["out_kafka"].value,
        # Unset: transactional, or at-least-once where the brokers refuse transactions.
        "kafka_delivery": cfg.kafka.delivery if cfg.kafka.delivery_given else None,
        **{f"out_{kind}": _shown_output(cfg, kind) for kind in OUTPUT_KINDS},
    }
    rows: list[tuple[str, Any, str]] = []
    for key in KEYS:
        if key in SIDE_SETTINGS or any(key == f"{s}_{n}" for s in SIDES for n in SIDE_SETTINGS):
            continue
        if key == "kafka_config":  # shown as the [kafka] table (format_settings)
            continue
        origin = resolved[key].origin if key in resolved else "default"
        if key == "state_dir" and origin == "default":
            origin = "default (OUT/state)"
        if key.startswith("out_") and key != "out_kafka" and used[key] is not None:
            if origin == "default":
                origin = resolved["out_kafka"].origin
        if key not in SIDES:
            rows.append((key, used[key], origin))
            continue
        side_cfg = cfg.left if key == "left" else cfg.right
        rows.append((key, side_cfg.kafka or list(side_cfg.paths), origin))
        shown = {
            "format": side_cfg.format,
            "key_field": ",".join(side_cfg.key_fields),
            "time_field": side_cfg.time_field,
            "time_unit": side_cfg.time_unit,
        }
        for name in SIDE_SETTINGS:
            own = _side_setting(resolved, key, name)
            if name == "format":
                own = _format_of(key, own, side_cfg.paths)
            rows.append((f"{key}_{name}", shown[name], own.origin))
    for key, value, origin in kafka_settings(resolved):
        rows.append((f"{KAFKA_TABLE}.{key}", REDACTED if is_secret(key) else value, origin))
    return rows


def _shown_output(cfg: RunConfig, kind: str) -> str | None:
    url = cfg.kafka.output_url(kind)
    return None if url is None else str(url)


def format_settings(rows: list[tuple[str, Any, str]]) -> str:
    """``--print-config``: the settings as TOML (a config file can be made of it),
    each with where it came from."""
    lines = ["# streamjoin run: resolved settings (flag > env STREAMJOIN_* > file > default)"]
    table = [(n[len(KAFKA_TABLE) + 1:], v, o) for n, v, o in rows
             if n.startswith(KAFKA_TABLE + ".")]
    rows = [r for r in rows if not r[0].startswith(KAFKA_TABLE + ".")]
    if table:  # a TOML table comes after every top-level key
        rows += [("[" + KAFKA_TABLE + "]", None, "")] + [(f"{n!r}", v, o) for n, v, o in table]
    for name, value, origin in rows:
        if name.startswith("["):
            lines.append(name + "  # librdkafka settings; secrets shown as ***")
            continue
        if value is None:
            lines.append(f"# {name} is not set{'' if origin == 'default' else ' (' + origin + ')'}")
            continue
        text = f"{name} = {_toml(value)}"
        lines.append(f"{text:<56} # {origin}")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
