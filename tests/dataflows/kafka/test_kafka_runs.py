"""End to end with Kafka: the real CLI in real processes against a Kafka
protocol server over TCP (librdkafka's mock cluster in a helper process),
JSON and Confluent Avro values on topics of several partitions, every join
type, 1 and 2 processes, outputs to files and to topics; ``streamjoin
validate`` reads the topics and must find an exact match. Dead letters from
Kafka name topic, partition and offset and hold the value's exact bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_runs import (
    Server,
    dataset,
    end_offset,
    kafka_server,
    produce_dataset,
    put,
    read_topic,
    run_json,
    stat,
    streamjoin,
    topics,
    url,
    validate,
)

from dataflows.inputs import SourceFormat
from dataflows.inputs.confluent_wire import frame
from dataflows.kafka import KafkaSettings, LocalSchemaRegistry, SchemaRegistry
from dataflows.kafka.produce import file_items, produce
from dataflows.outputs import read_rows
from dataflows.outputs.dead_letters import raw_bytes_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from kafka_server()


@pytest.mark.parametrize(
    ("how", "processes", "fmt", "kafka_out"),
    [
        ("inner", 1, "jsonl", False),
        ("left", 2, "jsonl", True),
        ("right", 1, "avro", True),
        ("full", 2, "avro", False),
    ],
)
def test_topics_join_exactly(tmp_path: Path, server: Server, registry: LocalSchemaRegistry,
                             how: str, processes: int, fmt: str, kafka_out: bool) -> None:
    t = topics(server, impressions=3, plays=3, **(
        {"joined": 4, "late": 1, "invalid": 1} if kafka_out else {}))
    ds = dataset(tmp_path / "data", fmt)
    produce_dataset(server, ds, t["impressions"], t["plays"], SchemaRegistry(registry.url))
    # Records that are no events: a tombstone, an empty value, a bad time field;
    # in Avro a foreign magic byte and a schema id the registry does not know.
    bad: list[bytes | None] = [None, b"", b'{"key": "u1:t1", "ts": "soon"}']
    if fmt == "avro":
        bad = [b"\x01junk", frame(99_999, b"\x02\x04")]
    first = end_offset(server, t["impressions"], 1)
    put(server, t["impressions"], 1, bad)
    offsets = {first + i: value for i, value in enumerate(bad)}
    out = tmp_path / "out"
    args = ["run", "--left", url(server, t["impressions"]), "--right", url(server, t["plays"]),
            "--until-end", "--how", how, "--upper", "1m", "--processes", str(processes),
            "--shards", "8", "--snapshot-interval", "500ms", "--out", str(out),
            "--metrics-port", "0", "--metrics-linger", "0", "--format", fmt]
    if fmt == "avro":
        args += ["--schema-registry", registry.url, "--output-format", "avro"]
    if kafka_out:
        prefix = t["impressions"].rsplit(".", 1)[0]
        args += ["--out-kafka", url(server, prefix), "--recovery-dir", str(tmp_path / "rec")]
    done = streamjoin(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = run_json(out)
    assert summary["kafka"]["until_end"] is True
    assert len(summary["kafka"]["partitions"]) == 6
    ok, report = validate(out)
    assert ok, report
    assert stat(report, "joined rows") > 100
    # Dead letters from Kafka: side:topic:partition, the Kafka offset, exact bytes.
    if kafka_out:
        rows = [_json(r["value"], registry) for r in read_topic(server, t["invalid"], 1)]
    else:
        rows = list(read_rows(out / "invalid"))
    found = {(r["partition"], r["offset"]): r for r in rows}
    for offset, value in offsets.items():
        row = found[(f"left:{t['impressions']}:1", offset)]
        assert raw_bytes_of(row) == (value or b"")
        assert row["reason"]


def _json(value: bytes, registry: LocalSchemaRegistry) -> dict[str, object]:
    import io
    import json

    import fastavro

    if value[:1] != b"\x00":
        loaded: dict[str, object] = json.loads(value)
        return loaded
    schema = SchemaRegistry(registry.url).writer_schema(int.from_bytes(value[1:5], "big"))
    datum = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)
    assert isinstance(datum, dict)
    return datum


def test_a_file_side_and_a_kafka_side_join_exactly(tmp_path: Path, server: Server) -> None:
    t = topics(server, plays=2)
    ds = dataset(tmp_path / "data", partitions=2)
    for i, path in enumerate(ds.right_paths):
        produce(KafkaSettings(), server.bootstrap, t["plays"],
                file_items(str(path), SourceFormat("jsonl")), partition_of=lambda _n, i=i: i)
    out = tmp_path / "out"
    done = streamjoin("run", "--left", str(ds.left_paths[0]),
                      "--right", url(server, t["plays"]), "--until-end", "--how", "full",
                      "--upper", "1m", "--out", str(out), "--metrics-port", "0",
                      "--metrics-linger", "0", "--shards", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    ok, report = validate(out)
    assert ok, report
