"""``streamjoin kafka-dev`` and ``streamjoin generate --to kafka://HOST:PORT/PREFIX``.

- ``kafka-dev`` runs :mod:`dataflows.kafka.dev`: librdkafka's mock cluster and
  a local Schema Registry, with the demo's topics, until Ctrl-C;
- ``generate --to`` writes the generated dataset (:mod:`dataflows.generator`)
  to the topics ``PREFIX.impressions`` and ``PREFIX.plays``: generated file
  ``i`` of a side goes to partition ``i`` (``--partitions`` files a side), so
  each partition keeps the bounded disorder and the intended late events the
  generator made. ``--format jsonl`` writes JSON values (each line's exact
  bytes, malformed ones included), ``--format avro`` Confluent Avro values under
  the generator's schema, registered as ``TOPIC-value`` (``--schema-registry``).
  The files go to ``--out`` when given, else to a temporary directory.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import fastavro

from dataflows.errors import ConfigError
from dataflows.inputs import SourceFormat
from dataflows.kafka import (
    KafkaSettings,
    SchemaRegistry,
    ensure_topic,
    parse_kafka_url,
    subject_of,
)
from dataflows.kafka.produce import ConfluentAvroValues, JsonValues, file_items, produce

STEMS = {"left": "impressions", "right": "plays"}


def _constant(partition: int) -> Callable[[int], int]:
    return lambda _n: partition


def add_kafka_dev_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from dataflows.kafka.dev import add_flags

    dev = sub.add_parser(
        "kafka-dev",
        help="a Kafka (librdkafka's mock cluster) and a Schema Registry to try things by hand",
        description="Start librdkafka's mock Kafka cluster and a local Schema Registry on "
        "127.0.0.1, create the demo's topics, print their addresses and example commands, "
        "and run until Ctrl-C. Everything is in memory; for development only.",
    )
    add_flags(dev)


def kafka_dev_command(args: argparse.Namespace) -> int:
    from dataflows.kafka.dev import run

    return run(args)


def add_generate_kafka_flags(gen: argparse.ArgumentParser) -> None:
    kafka = gen.add_argument_group("to Kafka")
    kafka.add_argument(
        "--to", metavar="URL",
        help="also produce the data to kafka://HOST:PORT/PREFIX: topics PREFIX.impressions "
        "and PREFIX.plays, generated file i to partition i (--partitions files a side)",
    )
    kafka.add_argument("--schema-registry", metavar="URL",
                       help="Schema Registry for --format avro (Confluent Avro values)")
    kafka.add_argument("--kafka-config", action="append", metavar="KEY=VALUE", default=[],
                       help="a librdkafka setting for the producer (repeatable)")


def generate_to_kafka(args: argparse.Namespace) -> int:
    """``generate --to``: generate (into ``--out`` or a temporary directory) and
    produce both sides."""
    from dataflows.cli.demo import describe, generator_config
    from dataflows.generator import generate

    prefix = parse_kafka_url(args.to)
    if args.format == "csv":
        msg = "generate --to writes JSON (--format jsonl) or Confluent Avro (--format avro) values"
        raise ConfigError(msg)
    if args.format == "avro" and not args.schema_registry:
        msg = "--format avro to Kafka needs a Schema Registry: --schema-registry URL"
        raise ConfigError(msg)
    settings = KafkaSettings.from_pairs(args.kafka_config)
    cfg = generator_config(args)
    with tempfile.TemporaryDirectory(prefix="streamjoin-generate-") as tmp:
        out = args.out or tmp
        ds = generate(out, cfg, format=args.format, progress=True)
        if args.out:
            print(describe(ds))
        registry = SchemaRegistry(args.schema_registry) if args.schema_registry else None
        urls = {}
        for side, paths in (("left", ds.left_paths), ("right", ds.right_paths)):
            topic = f"{prefix.topic}.{STEMS[side]}"
            count = ensure_topic(settings, prefix.bootstrap, topic, len(paths))
            if count < len(paths):
                msg = (f"topic {topic!r} has {count} partition(s), fewer than the {len(paths)} "
                       f"files a side (--partitions); use --partitions {count} or a topic "
                       "with more partitions")
                raise ConfigError(msg)
            values: JsonValues | ConfluentAvroValues = JsonValues()
            if args.format == "avro":
                assert registry is not None  # noqa: S101 - checked above
                with open(paths[0], "rb") as fo:
                    schema = fastavro.reader(fo).writer_schema
                if not isinstance(schema, dict):
                    msg = f"{paths[0]}: the Avro file's schema is not a record schema"
                    raise ConfigError(msg)
                values = ConfluentAvroValues(registry, subject_of(topic), schema)
            fmt = SourceFormat(args.format)
            total = 0
            for i, path in enumerate(paths):
                report = produce(settings, prefix.bootstrap, topic,
                                 file_items(str(path), fmt, values),
                                 partition_of=_constant(i))
                total += report.records
            urls[side] = f"kafka://{prefix.bootstrap}/{topic}"
            print(f"produced {total:,} records of {Path(paths[0]).name.split('.')[0]} to "
                  f"{urls[side]} ({len(paths)} partition(s), "
                  f"{'Confluent Avro' if args.format == 'avro' else 'JSON'} values)")
    extra = (f" --format avro --schema-registry {args.schema_registry}"
             if args.format == "avro" else "")
    print(f"join it with: streamjoin run --left {urls['left']} --right {urls['right']} "
          f"--until-end{extra} --out out-kafka")
    return 0
