"""A Kafka to try things by hand: a mock cluster and a local Schema Registry in
one process, until Ctrl-C (``streamjoin kafka-dev``, or ``python -m
dataflows.kafka.dev``).

It prints the bootstrap address, the registry URL and ready-made ``kafka://``
URLs of the topics it created, as one JSON object on the first line (for
scripts), then as text with example commands. By default it creates the topics
of a demo under the prefix ``demo``: ``demo.impressions`` and ``demo.plays``
(the inputs ``streamjoin generate --to kafka://.../demo`` writes) and
``demo.out.joined``, ``demo.out.late``, ``demo.out.invalid`` (the outputs of
``--out-kafka kafka://.../demo.out``). librdkafka's mock cluster cannot create
topics on request, so every topic a session needs is made here (``--topic
NAME:PARTITIONS``, ``--partitions``). Everything lives in memory and ends with
the process; nothing listens beyond 127.0.0.1.

The mock keeps at most :data:`MOCK_PARTITION_BYTES` (5 MiB) of record batches
per partition and deletes the oldest beyond that, like a tiny retention: a
source that has not read them yet stops with an error rather than skip them,
and ``validate`` reports an output topic that lost records. Spread larger data
over more partitions.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from dataflows.kafka.mock_cluster import MockCluster, parse_topic_spec
from dataflows.kafka.registry_server import LocalSchemaRegistry

DEMO_PREFIX = "demo"
DEFAULT_PARTITIONS = 4
#: What librdkafka's mock cluster keeps of each partition (its source: 5 MiB of
#: record batches, and at most 100,000 batches); older batches are deleted.
MOCK_PARTITION_BYTES = 5 * 1024 * 1024


def demo_topics(prefix: str = DEMO_PREFIX, partitions: int = DEFAULT_PARTITIONS) -> list[str]:
    """The topics of the demo: inputs with ``partitions`` partitions, the joined
    output with twice as many (its rows are larger), late and dead letters."""
    return [f"{prefix}.impressions:{partitions}", f"{prefix}.plays:{partitions}",
            f"{prefix}.out.joined:{2 * partitions}", f"{prefix}.out.late:1",
            f"{prefix}.out.invalid:1"]


DEFAULT_TOPICS = tuple(demo_topics())


def start(
    topics: Sequence[str] = DEFAULT_TOPICS, brokers: int = 1, registry_port: int = 0
) -> tuple[MockCluster, LocalSchemaRegistry, dict[str, Any]]:
    """Start both; returns them and what :func:`main` prints."""
    specs = [parse_topic_spec(t) for t in topics]
    cluster = MockCluster(brokers)
    try:
        for name, parts in specs:
            cluster.create_topic(name, parts)
        registry = LocalSchemaRegistry(port=registry_port)
    except BaseException:
        cluster.close()
        raise
    info = {
        "bootstrap": cluster.bootstrap,
        "schema_registry": registry.url,
        "topics": {name: {"partitions": parts, "url": f"kafka://{cluster.bootstrap}/{name}"}
                   for name, parts in specs},
    }
    return cluster, registry, info


def examples(info: dict[str, Any], prefix: str = DEMO_PREFIX) -> list[str]:
    """Example commands for the demo topics (none if they were not created)."""
    topics = info["topics"]
    inputs = (f"{prefix}.impressions", f"{prefix}.plays")
    if not all(t in topics for t in inputs):
        return []
    k = f"kafka://{info['bootstrap']}"
    parts = topics[inputs[0]]["partitions"]
    lines = [
        "Try (another terminal):",
        f"  streamjoin generate --to {k}/{prefix} --impressions {5000 * parts} "
        f"--partitions {parts}",
        f"  streamjoin run --left {k}/{prefix}.impressions --right {k}/{prefix}.plays "
        "--until-end --out out-kafka" + (
            f" --out-kafka {k}/{prefix}.out" if f"{prefix}.out.joined" in topics else ""),
        "  streamjoin validate out-kafka",
        "Confluent Avro instead of JSON: generate ... --format avro --schema-registry "
        f"{info['schema_registry']}, then run ... --format avro --schema-registry "
        f"{info['schema_registry']} (with new topics: kafka-dev --prefix NAME)",
        f"The mock keeps at most {MOCK_PARTITION_BYTES >> 20} MiB per partition (older "
        "records are deleted): for more data, more partitions (--partitions).",
    ]
    return lines


def serve(info: dict[str, Any], out: IO[str], stop: threading.Event,
          prefix: str = DEMO_PREFIX) -> None:
    """Print ``info`` (JSON, then text) and wait until ``stop`` is set."""
    print(json.dumps(info), file=out)
    print(f"Kafka (librdkafka mock cluster): {info['bootstrap']}", file=out)
    print(f"Schema Registry: {info['schema_registry']}", file=out)
    for name, topic in info["topics"].items():
        print(f"  topic {name} ({topic['partitions']} partitions): {topic['url']}", file=out)
    for line in examples(info, prefix):
        print(line, file=out)
    print("Ctrl-C stops both (everything is in memory).", file=out, flush=True)
    stop.wait()


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``kafka-dev``."""
    parser.add_argument("--topic", action="append", metavar="NAME:PARTITIONS",
                        help="a topic to create (repeatable; default: the demo's topics)")
    parser.add_argument("--prefix", default=DEMO_PREFIX,
                        help=f"the demo topics' prefix (default {DEMO_PREFIX})")
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS, metavar="N",
                        help=f"partitions of the demo's input and joined topics "
                        f"(default {DEFAULT_PARTITIONS})")
    parser.add_argument("--brokers", type=int, default=1)
    parser.add_argument("--registry-port", type=int, default=0, metavar="PORT",
                        help="the Schema Registry's port (default: a free one)")


def run(args: argparse.Namespace, out: IO[str] = sys.stdout,
        stop: threading.Event | None = None) -> int:
    """Start, print, wait for Ctrl-C/SIGTERM (or ``stop``), stop."""
    topics = args.topic or demo_topics(args.prefix, args.partitions)
    cluster, registry, info = start(topics, args.brokers, args.registry_port)
    done = stop or threading.Event()
    if stop is None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
    try:
        serve(info, out, done, args.prefix)
    finally:
        registry.close()
        cluster.close()
    return 0


def main(argv: list[str] | None = None, out: IO[str] = sys.stdout,
         stop: threading.Event | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataflows.kafka.dev")
    add_flags(parser)
    return run(parser.parse_args(argv), out, stop)


if __name__ == "__main__":
    raise SystemExit(main())
