"""Kafka benchmarks on librdkafka's mock cluster (not a timed test).

Measures, on one process:

- decoding Confluent Avro values: hand framing + fastavro ``schemaless_reader``
  with a cached writer schema (what :mod:`dataflows.inputs.kafka_records`
  does, events out) against confluent-kafka's ``AvroDeserializer`` (dicts out);
- decoding JSON values (:class:`KafkaRecordDecoder`);
- producing to the mock cluster (:func:`dataflows.kafka.produce.produce`);
- reading back through the Kafka source partitions (``until_end``), decoded.

    .venv/bin/python bench/kafka_bench.py --records 200000
"""

from __future__ import annotations

import argparse
import io
import json
import time

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dataflows.inputs import SourceFormat
from dataflows.inputs.confluent_wire import frame
from dataflows.inputs.kafka_records import KafkaRecordDecoder
from dataflows.kafka import KafkaSettings, LocalSchemaRegistry, MockCluster, SchemaRegistry
from dataflows.kafka.produce import produce
from dataflows.kafka.urls import parse_kafka_url
from dataflows.sources.kafka import KafkaInput, KafkaSource, KafkaSourceOptions

SCHEMA = {"type": "record", "name": "Impression", "namespace": "bench", "fields": [
    {"name": "key", "type": "string"}, {"name": "ts", "type": "long"},
    {"name": "title_id", "type": "string"}, {"name": "user_id", "type": "string"},
    {"name": "row", "type": "string"}, {"name": "device", "type": "string"}]}


def records(n: int) -> list[dict[str, object]]:
    return [{"key": f"u{i % 50000}:t{i % 977}", "ts": 1_700_000_000_000 + i * 3,
             "title_id": f"t{i % 977}", "user_id": f"u{i % 50000}", "row": "continue-watching",
             "device": "tv"} for i in range(n)]


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    n = args.records
    recs = records(n)
    fmt = SourceFormat("avro")
    with LocalSchemaRegistry() as server, MockCluster() as cluster:
        registry = SchemaRegistry(server.url)
        sid = registry.register("bench-value", SCHEMA)
        parsed = fastavro.parse_schema(SCHEMA)
        values = []
        for r in recs:
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, parsed, r)
            values.append(frame(sid, buf.getvalue()))

        decoder = KafkaRecordDecoder("left", fmt, "confluent-avro", registry)
        pairs = list(enumerate(values))
        t = time.perf_counter()
        for i in range(0, n, 10_000):
            decoder.decode("left:bench:0", pairs[i:i + 10_000])
        print(f"decode confluent-avro, fastavro + cached schema, to events: "
              f"{rate(n, time.perf_counter() - t)}")
        with_reader = KafkaRecordDecoder("left", fmt, "confluent-avro", registry,
                                         reader_schema=SCHEMA)
        t = time.perf_counter()
        for i in range(0, n, 10_000):
            with_reader.decode("left:bench:0", pairs[i:i + 10_000])
        print(f"  the same, resolved to a reader schema: {rate(n, time.perf_counter() - t)}")
        t = time.perf_counter()
        read = fastavro.schemaless_reader
        writer = registry.writer_schema(sid)
        for v in values:
            b = io.BytesIO(v)
            b.seek(5)
            read(b, writer, None)
        print(f"  framing + schemaless_reader alone (dicts): {rate(n, time.perf_counter() - t)}")
        with SchemaRegistryClient({"url": server.url}) as client:
            deser = AvroDeserializer(client)
            ctx = SerializationContext("bench", MessageField.VALUE)
            t = time.perf_counter()
            for v in values:
                deser(v, ctx)
            print(f"  confluent-kafka AvroDeserializer (dicts): "
                  f"{rate(n, time.perf_counter() - t)}")

        jvalues = [json.dumps(r, separators=(",", ":")).encode() for r in recs]
        jdecoder = KafkaRecordDecoder("left", SourceFormat("jsonl"), "json")
        jpairs = list(enumerate(jvalues))
        t = time.perf_counter()
        for i in range(0, n, 10_000):
            jdecoder.decode("left:bench:0", jpairs[i:i + 10_000])
        print(f"decode json values to events: {rate(n, time.perf_counter() - t)}")

        for name, vals in (("json", jvalues), ("avro", values)):
            cluster.create_topic(name, args.partitions)
            report = produce(KafkaSettings(), cluster.bootstrap, name,
                             ((r["key"].encode(), v) for r, v in zip(recs, vals, strict=True)))  # type: ignore[union-attr]
            print(f"produce {name} to the mock cluster ({args.partitions} partitions): "
                  f"{rate(report.records, report.seconds)}")
        for name, vf in (("json", "json"), ("avro", "confluent-avro")):
            spec = KafkaInput("left", parse_kafka_url(f"kafka://{cluster.bootstrap}/{name}"),
                              SourceFormat("jsonl") if vf == "json" else fmt, vf)  # type: ignore[arg-type]
            src = KafkaSource([spec], KafkaSettings(), KafkaSourceOptions(until_end=True),
                              registry_url=server.url)
            t = time.perf_counter()
            got = 0
            for part_name in src.list_parts():
                part = src.build_part("in", part_name, None)
                while True:
                    try:
                        for batch in part.next_batch():
                            got += len(batch.events)
                    except StopIteration:
                        break
                part.close()
            print(f"read + decode {name} through the source partitions: "
                  f"{rate(got, time.perf_counter() - t)} ({got} events)")


if __name__ == "__main__":
    main()
