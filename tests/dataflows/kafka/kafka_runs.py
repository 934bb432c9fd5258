"""Helpers of the end-to-end Kafka tests: a Kafka protocol server in a helper
process (librdkafka's mock cluster, or ``STREAMJOIN_TEST_KAFKA``), generated
data produced to topics, the real CLI in real processes, topics read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_env import REAL_KAFKA
from kafka_read import read_records

from dataflows.generator import GeneratedDataset, GeneratorConfig, generate
from dataflows.inputs import SourceFormat
from dataflows.kafka import KafkaSettings, MockClusterProcess, SchemaRegistry, subject_of
from dataflows.kafka.clients import librdkafka_log
from dataflows.kafka.produce import ConfluentAvroValues, JsonValues, file_items, produce


class Server(Protocol):
    bootstrap: str

    def create_topic(self, name: str, partitions: int) -> None: ...


class RealServer:
    """The broker of ``STREAMJOIN_TEST_KAFKA`` (topics through the admin API)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._admin = AdminClient({"bootstrap.servers": bootstrap})

    def create_topic(self, name: str, partitions: int) -> None:
        self._admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def kafka_server() -> Iterator[Server]:
    """The fixture body: a mock cluster in a helper process, reached over TCP."""
    if REAL_KAFKA:
        yield RealServer(REAL_KAFKA)
        return
    with MockClusterProcess() as server:
        yield server


def topics(server: Server, **partitions: int) -> dict[str, str]:
    """Fresh topics ``name -> unique topic``, created with the given partitions."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    made = {}
    for name, count in partitions.items():
        topic = f"{prefix}.{name}"
        server.create_topic(topic, count)
        made[name] = topic
    return made


def url(server: Server, topic: str) -> str:
    return f"kafka://{server.bootstrap}/{topic}"


def dataset(out: Path, fmt: str = "jsonl", **config: Any) -> GeneratedDataset:
    base: dict[str, Any] = {"impressions": 1_500, "keys": 300, "seed": 5, "partitions": 3,
                            "rate_per_s": 20.0, "window_ms": 60_000, "disorder_ms": 2_000,
                            "late_fraction": 0.01, "duplicate_fraction": 0.01,
                            "malformed_fraction": 0.01 if fmt == "jsonl" else 0.0}
    return generate(out, GeneratorConfig(**{**base, **config}), format=fmt, progress=False)


def produce_dataset(server: Server, ds: GeneratedDataset, left: str, right: str,
                    registry: SchemaRegistry | None = None) -> None:
    """Generated file ``i`` of a side to partition ``i`` of its topic."""
    for topic, paths in ((left, ds.left_paths), (right, ds.right_paths)):
        values: JsonValues | ConfluentAvroValues = JsonValues()
        if ds.format == "avro":
            import fastavro

            assert registry is not None
            with open(paths[0], "rb") as fo:
                schema = fastavro.reader(fo).writer_schema
            assert isinstance(schema, dict)
            values = ConfluentAvroValues(registry, subject_of(topic), schema)
        for i, path in enumerate(paths):
            produce(KafkaSettings(), server.bootstrap, topic,
                    file_items(str(path), SourceFormat(ds.format), values),
                    partition_of=lambda _n, i=i: i)


def put(server: Server, topic: str, partition: int, values: list[bytes | None],
        key: bytes | None = b"k") -> None:
    produce(KafkaSettings(), server.bootstrap, topic, [(key, v) for v in values],
            partition_of=lambda _n: partition)


def streamjoin(*args: str, timeout: float = 240, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dataflows.cli", *args], capture_output=True,
                          text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def start(*args: str) -> subprocess.Popen[str]:
    """``streamjoin ARGS`` in a process group of its own (to be killed whole)."""
    return subprocess.Popen([sys.executable, "-m", "dataflows.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill_group(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=60)


def run_json(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "run.json").read_text())
    return data


def validate(out: Path) -> tuple[bool, str]:
    done = streamjoin("validate", str(out))
    return done.returncode == 0, done.stdout + done.stderr


def stat(report: str, name: str) -> int:
    """A statistic of a validate report (``  name   1,234``)."""
    for line in report.splitlines():
        if line.strip().startswith(name + " ") or line.strip() == name:
            return int(line.split()[-1].replace(",", ""))
    msg = f"no {name!r} in:\n{report}"
    raise AssertionError(msg)


def end_offset(server: Server, topic: str, partition: int) -> int:
    consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "check",
                         "logger": librdkafka_log})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                  timeout=10)[1])
    finally:
        consumer.close()


def read_topic(server: Server, topic: str, partitions: int) -> list[dict[str, Any]]:
    """Every record of a topic: key, value, headers, partition, offset."""
    return read_records(server.bootstrap, topic, partitions)


def scrape(port: int, name: str) -> float | None:
    """The value of an unlabelled metric on ``127.0.0.1:port`` (None if absent)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
