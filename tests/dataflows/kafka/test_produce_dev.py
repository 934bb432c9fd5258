"""The producer helper (a generated dataset's files to topics) and the
kafka-dev runner."""

from __future__ import annotations

import io
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import KafkaHost

from dataflows.generator import GeneratorConfig, generate
from dataflows.inputs import SourceFormat
from dataflows.inputs.kafka_records import KafkaRecordDecoder
from dataflows.kafka import (
    KafkaClientError,
    KafkaSettings,
    LocalSchemaRegistry,
    SchemaRegistry,
    dev,
)
from dataflows.kafka.produce import ConfluentAvroValues, file_items, produce
from joins import Event

SCHEMA = {"type": "record", "name": "R", "fields": [
    {"name": "key", "type": "string"}, {"name": "ts", "type": "long"}]}


def test_generated_json_lines_go_out_as_exact_bytes(
    tmp_path: Path, kafka: KafkaHost
) -> None:
    data = generate(tmp_path, GeneratorConfig(impressions=300, keys=50, malformed_fraction=0.02),
                    progress=False)
    [path] = data.paths("left")
    lines = [ln for ln in path.read_bytes().split(b"\n") if ln.strip()]
    items = list(file_items(str(path), SourceFormat("jsonl")))
    assert [v for _, v in items] == lines
    assert any(k is None for k, _ in items)  # malformed lines: no join key
    topic = f"p-{uuid.uuid4().hex[:10]}"
    kafka.create_topic(topic, 2)
    report = produce(KafkaSettings(), kafka.bootstrap, topic, items, partition_of=lambda i: i % 2)
    assert report.records == len(lines)
    assert report.per_partition == {0: (len(lines) + 1) // 2, 1: len(lines) // 2}


def test_avro_values_decode_back(registry: LocalSchemaRegistry) -> None:
    values = ConfluentAvroValues(SchemaRegistry(registry.url), "produce-test-value", SCHEMA)
    decoder = KafkaRecordDecoder("right", SourceFormat("avro"), "confluent-avro",
                                 SchemaRegistry(registry.url))
    [event] = decoder.decode("right:x:0", [(0, values.encode({"key": "k", "ts": 5}))])
    assert isinstance(event, Event)
    assert (event.key, event.ts) == ("k", 5)


def test_undeliverable_records_raise() -> None:
    with pytest.raises(KafkaClientError, match="were not delivered"):
        produce(KafkaSettings(), "127.0.0.1:1", "t", [(None, b"x")],
                **{"message.timeout.ms": 500})


def test_kafka_dev_starts_a_cluster_and_a_registry() -> None:
    out = io.StringIO()
    stop = threading.Event()
    runner = threading.Thread(target=dev.main, args=(["--topic", "a:3"], out, stop))
    runner.start()
    try:
        for _ in range(100):
            if "Ctrl-C" in out.getvalue():
                break
            threading.Event().wait(0.05)
        info: dict[str, Any] = json.loads(out.getvalue().splitlines()[0])
        assert info["topics"] == {"a": {"partitions": 3,
                                        "url": f"kafka://{info['bootstrap']}/a"}}
        from dataflows.kafka import topic_partitions

        assert topic_partitions(KafkaSettings(), info["bootstrap"], "a") == [0, 1, 2]
        registry = SchemaRegistry(info["schema_registry"])
        assert registry.register("dev-value", SCHEMA) == 1
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()


@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_generate_to_kafka_puts_file_i_on_partition_i(
    tmp_path: Path, kafka: KafkaHost, registry: LocalSchemaRegistry, fmt: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kafka_read import read_values

    from dataflows.cli.command import main

    prefix = f"g{uuid.uuid4().hex[:8]}"
    for stem in ("impressions", "plays"):
        kafka.create_topic(f"{prefix}.{stem}", 3)  # one more than the files: stays empty
    args = ["generate", "--to", f"kafka://{kafka.bootstrap}/{prefix}", "--out", str(tmp_path),
            "--impressions", "300", "--keys", "60", "--partitions", "2", "--format", fmt]
    if fmt == "avro":
        args += ["--schema-registry", registry.url, "--malformed-fraction", "0"]
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert f"--left kafka://{kafka.bootstrap}/{prefix}.impressions" in shown
    for stem in ("impressions", "plays"):
        values = read_values(kafka.bootstrap, f"{prefix}.{stem}", 3)
        for i in range(2):
            path = tmp_path / f"{stem}-{i:03d}.{fmt}"
            if fmt == "jsonl":
                lines = [ln for ln in path.read_bytes().splitlines() if ln.strip()]
                assert values[i] == lines  # exact bytes, in order, malformed ones included
            else:
                import fastavro

                with path.open("rb") as fo:
                    assert len(values[i]) == sum(1 for _ in fastavro.reader(fo))
                assert all(v[:1] == b"\x00" for v in values[i])  # Confluent framing
        assert values[2] == []


def test_generate_needs_out_or_to(capsys: pytest.CaptureFixture[str]) -> None:
    from dataflows.cli.command import main

    assert main(["generate"]) == 2
    assert "generate needs --out DIR (files) or --to kafka://" in capsys.readouterr().err
