"""``streamjoin validate`` for runs that read or write Kafka topics.

Validation of a file run reads the run's input files and output files
(:mod:`dataflows.validate.check`). A Kafka run (``--until-end``, so that its
inputs are bounded) is validated by materialising its topics into such a run
directory first, a *twin* in a temporary directory, and validating the twin:

- **inputs**: each Kafka partition's records from the first offset the run read
  to the end offset it stopped at (both in ``run.json``'s
  ``kafka.partitions``) become one JSON Lines file, a line per record: a JSON
  value's exact bytes, or for a Confluent Avro value the canonical JSON of its
  datum (decoded here, independently of the run, from the Confluent frame and
  the writer schema the registry holds, resolved to the side's reader schema
  that ``run.json`` records), which is the text the run's event identity is a
  digest of. Records no JSON Lines file can hold are checked here, against
  the run's dead letters: null values (tombstones), empty values, Confluent
  Avro values that do not frame, name an unknown schema or do not decode;
  JSON values with line breaks cannot be checked and are reported
  (``kafka_value_not_checkable``);
- **outputs** on topics: every record of every partition, read with
  ``isolation.level=read_committed``; with transactions and a recovery
  directory, also only the records of transactions the sink logged as
  committed (``committed.log``, :mod:`dataflows.kafka.spool`), since
  librdkafka's mock cluster shows aborted records to every reader;
  deduplicated by the ``id`` header (a resume may send some again; a repeat
  with another value is a finding, ``kafka_conflicting_duplicate``), and
  written as JSON Lines rows. A dead letter of a record that is a line of the
  twin's inputs is rewritten to name that line (file partition, byte offset);
- ``run.json``: the run's, with the inputs replaced by the twin's files and the
  invalid counts less the dead letters checked here.

The statistics say how many duplicates were removed per output and how many
records of uncommitted transactions were left out.
"""

from __future__ import annotations

import base64
import io
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import fastavro.write
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from dataflows.errors import ValidationError
from dataflows.kafka import (
    KafkaClientError,
    KafkaSettings,
    RegistryError,
    SchemaRegistry,
    make_consumer,
    parse_kafka_url,
    topic_partitions,
    watermarks,
)
from dataflows.kafka.settings import REDACTED
from dataflows.kafka.spool import committed_labels
from dataflows.outputs import read_rows
from dataflows.validate.report import Finding, FindingCollector, ValidationReport
from joins import SIDES

_MAGIC = 0
_HEADER = 5
_SPOOL_DIR = "kafka-spool"

#: ``(offset, value, headers)`` of one record read back.
Record = tuple[int, bytes | None, dict[str, str]]


def is_kafka_run(run: dict[str, Any]) -> bool:
    """Whether ``run.json`` describes a run with Kafka inputs or outputs."""
    inputs = run.get("inputs", {})
    return any(isinstance(inputs.get(s), dict) and inputs[s].get("kafka") for s in SIDES) or bool(
        run.get("kafka", {}).get("outputs"))


@dataclass
class _Expected:
    """Dead letters checked here, and how the others map onto the twin's lines."""

    #: ``(partition, offset) -> (side, reason, raw)`` of the dead letters checked here.
    direct: dict[tuple[str, int], tuple[str, str, str]] = field(default_factory=dict)
    #: ``(partition, offset) -> (twin partition, byte offset, raw)`` of the lines.
    lines: dict[tuple[str, int], tuple[str, int, str | None]] = field(default_factory=dict)
    per_side: Counter[str] = field(default_factory=Counter)
    #: The run's dead letters of the ``direct`` records, as found.
    seen: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def dead(self, side: str, partition: str, offset: int, reason: str, raw: str) -> None:
        """A record no file of the twin holds: its dead letter is checked here."""
        self.direct[(partition, offset)] = (side, reason, raw)
        self.per_side[side] += 1


@dataclass
class KafkaTwin:
    """The twin run directory of a Kafka run, and what materialising it found."""

    run_dir: Path
    original: Path
    findings: list[Finding]
    stats: dict[str, int]
    started: float

    def report(self, inner: ValidationReport) -> ValidationReport:
        """The report of the Kafka run: the twin's, with the topics' findings
        and statistics first, named after the original run directory."""
        return ValidationReport(self.original, (*self.findings, *inner.findings),
                                {**self.stats, **inner.stats},
                                time.monotonic() - self.started)


@contextmanager
def kafka_twin(run_dir: Path, max_examples: int = 5,
               settings: KafkaSettings | None = None) -> Iterator[KafkaTwin | None]:
    """The twin of the Kafka run in ``run_dir`` (in a temporary directory that
    lives as long as the context), or ``None`` for a run without Kafka."""
    try:
        run = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        run = None  # validate() reports it
    if not isinstance(run, dict) or not is_kafka_run(run):
        yield None
        return
    started = time.monotonic()
    check = FindingCollector(max_examples)
    stats: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="streamjoin-validate-kafka-") as work:
        twin = Path(work) / "run"
        try:
            _materialize(run_dir, run, twin, _settings(run, settings), check, stats)
        except (KafkaClientError, RegistryError) as exc:
            msg = f"cannot read the run's topics: {exc}"
            raise ValidationError(msg) from exc
        yield KafkaTwin(twin, run_dir, check.findings, stats, started)


def _settings(run: dict[str, Any], extra: KafkaSettings | None) -> KafkaSettings:
    """The run's client settings without its redacted secrets, then ``extra``."""
    kafka = run.get("kafka", {})
    values = {k: v for k, v in kafka.get("settings", {}).items()
              if v != REDACTED and not k.startswith("schema.registry.")}
    base = KafkaSettings(values)
    return base.merged(extra) if extra is not None else base


def _materialize(run_dir: Path, run: dict[str, Any], twin: Path, settings: KafkaSettings,
                 check: FindingCollector, stats: dict[str, int]) -> None:
    kafka = run.get("kafka", {})
    registry = SchemaRegistry(kafka["registry"]) if kafka.get("registry") else None
    twin.mkdir(parents=True)
    expected = _Expected()
    inputs = dict(run["inputs"])
    for side_name in SIDES:
        conf = inputs[side_name]
        if conf.get("kafka"):
            inputs[side_name] = _inputs(run, side_name, conf, twin / "inputs", settings,
                                        registry, expected, check, stats)
    outputs = kafka.get("outputs", {})
    spool = _committed(run, kafka)
    for kind in ("joined", "late", "invalid"):
        if kind in outputs:
            _outputs(kind, outputs[kind], twin / kind, settings, registry, spool, expected,
                     check, stats)
        elif kind == "invalid":  # files, whose Kafka dead letters need the twin's names
            (twin / kind).mkdir()
            with (twin / kind / "rows.jsonl").open("w", encoding="utf-8") as fo:
                for row in read_rows(run_dir / kind):
                    twin_row = _twin_dead_letter(row, expected)
                    if twin_row is not None:
                        fo.write(json.dumps(twin_row, separators=(",", ":")) + "\n")
        elif (run_dir / kind).exists():
            os.symlink((run_dir / kind).resolve(), twin / kind)
    _check_direct(expected, check, stats)
    doc = dict(run)
    doc["inputs"] = inputs
    doc["kafka_twin_of"] = str(run_dir)
    doc.pop("kafka", None)  # the twin is a run of files
    counters = json.loads(json.dumps(run.get("counters", {})))
    if isinstance(counters.get("invalid"), dict):
        for side, n in expected.per_side.items():
            counters["invalid"][side] = counters["invalid"].get(side, 0) - n
    doc["counters"] = counters
    (twin / "run.json").write_text(json.dumps(doc, indent=2))


def _committed(run: dict[str, Any], kafka: dict[str, Any]) -> set[str] | None:
    """The committed transactions' labels, when the run logged them."""
    recovery = run.get("recovery", {}).get("recovery_dir")
    if kafka.get("delivery") != "transactional" or not recovery:
        return None
    root = os.path.join(recovery, _SPOOL_DIR)
    return committed_labels(root) if os.path.isdir(root) else None


def _read(settings: KafkaSettings, bootstrap: str, topic: str, partition: int,
          start: int, end: int | None) -> Iterator[Record]:
    """Records ``[start, end)`` of one partition (``end`` None: to its end now)."""
    extra = {"auto.offset.reset": "error"}
    consumer = make_consumer(settings, bootstrap, None, **extra)
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        quiet_since = time.monotonic()
        while True:
            if end is not None and start >= end:
                return
            # Short waits: consume() returns early only when its batch is full.
            msgs = consumer.consume(10_000, 0.2)
            if not msgs:
                if time.monotonic() - quiet_since > 10:
                    msg = f"no records from {topic}[{partition}] at offset {start} within 10 s"
                    raise KafkaClientError(msg)
                continue
            quiet_since = time.monotonic()
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if end is None or (m.offset() or 0) >= end:
                            return
                        continue
                    msg = f"reading {topic}[{partition}]: {err.str()}"
                    raise KafkaClientError(msg)
                offset = m.offset() or 0
                if end is not None and offset >= end:
                    return
                start = offset + 1
                pairs: Any = m.headers() or []
                headers = {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                           for k, v in pairs}
                yield offset, m.value(), headers
    finally:
        consumer.close()


def _inputs(run: dict[str, Any], side: str, conf: dict[str, Any], folder: Path,
            settings: KafkaSettings, registry: SchemaRegistry | None, expected: _Expected,
            check: FindingCollector, stats: dict[str, int]) -> dict[str, Any]:
    """One Kafka side as files: a JSON Lines file per Kafka partition, or for
    Confluent Avro an Avro file per partition and reader schema."""
    url = parse_kafka_url(conf["kafka"])
    parts = sorted((p for p in run.get("kafka", {}).get("partitions", {}).values()
                    if p.get("side") == side), key=lambda p: int(p["partition"]))
    listed = topic_partitions(settings, url.bootstrap, url.topic)
    if len(parts) != len(listed):
        msg = (f"run.json records {len(parts)} of the {len(listed)} partitions of "
               f"{url.topic!r}: the run did not finish (validate needs a run with --until-end "
               "that read every partition to its end)")
        raise ValidationError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    avro = conf["format"] == "avro"
    files = _Files(side, folder, expected)
    for part in parts:
        if part.get("end_offset") is None or part.get("next_offset") != part.get("end_offset"):
            msg = (f"{side}:{url.topic}:{part['partition']} was not read to an end offset "
                   "(validate needs a finished run with --until-end)")
            raise ValidationError(msg)
        name = f"{side}:{url.topic}:{part['partition']}"
        readers = _readers(part, conf.get("reader_schema"))
        for offset, value, _ in _read(settings, url.bootstrap, url.topic,
                                      int(part["partition"]), int(part["first_offset"]),
                                      int(part["end_offset"])):
            if not avro:
                line = _json_line(side, name, offset, value, expected)
                if line is not None:
                    files.line(name, offset, line)
                continue
            reader = next(r for r in readers if r[0] <= offset)
            got = _avro_datum(side, name, offset, value, registry, reader, expected)
            if got is not None:
                files.datum(name, offset, *got)
        files.close()
        stats[f"kafka input {name}"] = int(part["end_offset"]) - int(part["first_offset"])
    check.add("kafka_value_not_checkable", len(files.not_checkable),
              [f"{where}: a JSON value with a line break (no JSON Lines file can hold it)"
               for where in files.not_checkable])
    return {"paths": files.paths, "format": "avro" if avro else "jsonl",
            "key_fields": conf["key_fields"], "time_field": conf["time_field"],
            "time_unit": conf["time_unit"]}


class _Files:
    """The twin's files of one side, and where each record went in them: a JSON
    Lines file per partition (offsets: bytes), or an Avro file per partition
    and schema (offsets: record indexes)."""

    def __init__(self, side: str, folder: Path, expected: _Expected) -> None:
        self.side, self.folder, self.expected = side, folder, expected
        self.paths: list[str] = []
        self.not_checkable: list[str] = []
        self._partition: str | None = None
        self._schema: str | None = None
        self._fo: Any = None
        self._writer: Any = None
        self._name = ""
        self._pos = 0

    def _open(self, partition: str, suffix: str, schema: Any = None, key: str = "") -> str:
        self.close()
        path = self.folder / (f"{partition.replace(':', '-')}"
                              f"{'' if not key else f'-s{len(self.paths):04d}'}{suffix}")
        self._fo = path.open("wb")
        if schema is not None:
            self._writer = fastavro.write.Writer(self._fo, schema, codec="null")
        self._partition, self._schema, self._pos = partition, key, 0
        self.paths.append(str(path))
        return f"{self.side}:{len(self.paths) - 1}:{path.name}"

    def line(self, partition: str, offset: int, line: bytes) -> None:
        if b"\n" in line or b"\r" in line:
            self.not_checkable.append(f"{partition}@{offset}")
            return
        if self._partition != partition:
            self._name = self._open(partition, ".jsonl")
        self.expected.lines[(partition, offset)] = (self._name, self._pos, None)
        self._fo.write(line + b"\n")
        self._pos += len(line) + 1

    def datum(self, partition: str, offset: int, datum: dict[str, Any], schema: Any,
              key: str) -> None:
        if self._partition != partition or self._schema != key:
            self._name = self._open(partition, ".avro", schema, key)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, datum)
        raw = base64.b64encode(buf.getvalue()).decode("ascii")
        self.expected.lines[(partition, offset)] = (self._name, self._pos, raw)
        self._writer.write(datum)
        self._pos += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer = None
        if self._fo is not None:
            self._fo.close()
            self._fo = None
        self._partition = None


def _readers(part: dict[str, Any], latest: Any) -> list[tuple[int, Any, str]]:
    """``(from offset, parsed reader schema, its JSON text)``, the latest first:
    which reader schema the run read which offsets with (``readers`` in
    run.json; schema evolution across resumes), else ``latest`` for all."""
    history = part.get("readers") or [[0, latest]]
    out = [(int(start), fastavro.parse_schema(schema) if schema else None,
            json.dumps(schema, sort_keys=True)) for start, schema in history]
    out.sort(key=lambda item: item[0], reverse=True)
    out[-1] = (-1, *out[-1][1:])  # the first reader read everything before the next
    return out


def _json_line(side: str, name: str, offset: int, value: bytes | None,
               expected: _Expected) -> bytes | None:
    """The twin's line of a JSON value, or ``None`` after recording the dead
    letter the run must have written for it."""
    if value is None:
        expected.dead(side, name, offset, "value is null (a tombstone)", "")
        return None
    if not value.strip():
        expected.dead(side, name, offset, "value is empty", value.decode("utf-8", "replace"))
        return None
    return value


def _avro_datum(side: str, name: str, offset: int, value: bytes | None,
                registry: SchemaRegistry | None, reader: tuple[int, Any, str],
                expected: _Expected) -> tuple[dict[str, Any], Any, str] | None:
    """The datum of a Confluent Avro value as the run read it, with the schema
    it is written under in the twin (the reader's, else the writer's), or
    ``None`` after recording the dead letter the run must have written."""
    if value is None:
        expected.dead(side, name, offset, "value is null (a tombstone)", "")
        return None
    raw = base64.b64encode(value).decode("ascii")
    if len(value) < _HEADER or value[0] != _MAGIC:
        expected.dead(side, name, offset, "confluent-avro:", raw)
        return None
    schema_id = int.from_bytes(value[1:_HEADER], "big")
    if registry is None:
        msg = "run.json names no Schema Registry for a Confluent Avro input"
        raise ValidationError(msg)
    try:
        writer = registry.writer_schema(schema_id)
    except LookupError:  # the registry knows no such id
        expected.dead(side, name, offset, f"confluent-avro: unknown schema id {schema_id}", raw)
        return None
    buf = io.BytesIO(value)
    buf.seek(_HEADER)
    try:
        datum = fastavro.schemaless_reader(buf, writer, reader[1])
    except Exception:  # fastavro raises many types on bad bytes
        expected.dead(side, name, offset, "avro:", raw)
        return None
    if buf.tell() != len(value):
        expected.dead(side, name, offset, "avro:", raw)
        return None
    if not isinstance(datum, dict):
        expected.dead(side, name, offset, "record is not an object", raw)
        return None
    if reader[1] is not None:
        return datum, reader[1], reader[2]
    return datum, writer, f"writer {schema_id}"


def _outputs(kind: str, url_text: str, folder: Path, settings: KafkaSettings,
             registry: SchemaRegistry | None, committed: set[str] | None,
             expected: _Expected, check: FindingCollector, stats: dict[str, int]) -> None:
    """One output topic, deduplicated by id, as a JSON Lines file."""
    url = parse_kafka_url(url_text)
    folder.mkdir(parents=True, exist_ok=True)
    seen: dict[str, bytes | None] = {}
    duplicates = conflicts = uncommitted = 0
    examples: list[str] = []
    deleted: list[str] = []
    with (folder / "rows.jsonl").open("w", encoding="utf-8") as fo:
        for partition in topic_partitions(settings, url.bootstrap, url.topic):
            low = _low_watermark(settings, url.bootstrap, url.topic, partition)
            if low > 0:
                deleted.append(f"{url.topic}[{partition}]: records before offset {low} are "
                               "gone (retention; librdkafka's mock cluster keeps 5 MiB)")
            for offset, value, headers in _read(settings, url.bootstrap, url.topic, partition,
                                                OFFSET_BEGINNING, None):
                if committed is not None and headers.get("txn") not in committed:
                    uncommitted += 1
                    continue
                rid = headers.get("id", f"{partition}@{offset}")
                if rid in seen:
                    duplicates += 1
                    if seen[rid] != value:
                        conflicts += 1
                        examples.append(f"{url.topic}[{partition}]@{offset}: id {rid}")
                    continue
                seen[rid] = value
                row: dict[str, Any] | None = _row(value, registry)
                if kind == "invalid" and row is not None:
                    row = _twin_dead_letter(row, expected)
                if row is not None:
                    fo.write(json.dumps(row, separators=(",", ":")) + "\n")
    stats[f"kafka {kind} records"] = len(seen) + duplicates
    stats[f"kafka {kind} duplicates removed"] = duplicates
    if committed is not None:
        stats[f"kafka {kind} uncommitted, left out"] = uncommitted
    check.add("kafka_conflicting_duplicate", conflicts, examples)
    check.add("kafka_output_deleted", len(deleted), deleted)


def _low_watermark(settings: KafkaSettings, bootstrap: str, topic: str, partition: int) -> int:
    consumer = make_consumer(settings, bootstrap)
    try:
        return watermarks(consumer, topic, partition)[0]
    finally:
        consumer.close()


def _row(value: bytes | None, registry: SchemaRegistry | None) -> dict[str, Any]:
    if value is None:
        msg = "an output record without a value"
        raise ValidationError(msg)
    if value[:1] == bytes([_MAGIC]) and registry is not None and len(value) >= _HEADER:
        writer = registry.writer_schema(int.from_bytes(value[1:_HEADER], "big"))
        datum = fastavro.schemaless_reader(io.BytesIO(value[_HEADER:]), writer, None)
        row = dict(datum) if isinstance(datum, dict) else {}
        for name in ("left", "right", "record"):
            if isinstance(row.get(name), str):
                row[name] = json.loads(row[name])
        return row
    loaded = json.loads(value)
    if not isinstance(loaded, dict):
        msg = f"an output record is not a JSON object: {value[:80]!r}"
        raise ValidationError(msg)
    return loaded


def _twin_dead_letter(row: dict[str, Any], expected: _Expected) -> dict[str, Any] | None:
    """A dead letter as the twin's inputs name its record; ``None`` for one that
    is checked here (its record is no line of the twin)."""
    where = (str(row.get("partition")), int(row.get("offset", -1)))
    if where in expected.direct:
        expected.seen[where] = row
        return None
    line = expected.lines.get(where)
    if line is not None:
        row["partition"], row["offset"] = line[0], line[1]
        if line[2] is not None:  # Confluent Avro: the datum's encoding in the twin's file
            row.update(raw=line[2], raw_encoding="base64",
                       raw_bytes=len(base64.b64decode(line[2])), raw_truncated=False)
    return row


def _check_direct(expected: _Expected, check: FindingCollector, stats: dict[str, int]) -> None:
    """The dead letters checked here: each present, with its reason and raw
    value (``confluent-avro:`` and ``avro:`` reasons by their prefix)."""
    missing, wrong = [], []
    for where, (_side, reason, raw) in sorted(expected.direct.items()):
        row = expected.seen.get(where)
        if row is None:
            missing.append(f"{where[0]}@{where[1]}: expected a dead letter ({reason})")
            continue
        ok_reason = (str(row.get("reason", "")).startswith(reason) if reason.endswith(":")
                     else row.get("reason") == reason)
        if not ok_reason or row.get("raw") != raw:
            wrong.append(f"{where[0]}@{where[1]}: reason {row.get('reason')!r}, expected "
                         f"{reason!r}; raw {str(row.get('raw'))[:40]!r}")
    stats["kafka dead letters checked here"] = len(expected.direct)
    check.add("kafka_missing_invalid", len(missing), missing)
    check.add("kafka_wrong_invalid", len(wrong), wrong)
