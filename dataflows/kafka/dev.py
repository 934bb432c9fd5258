"""A Kafka to try things by hand: a mock cluster and a local Schema Registry in
one process, until Ctrl-C (``streamjoin kafka-dev`` once wired into the CLI;
today ``python -m dataflows.kafka.dev``).

It prints the bootstrap address, the registry URL and ready-made
``kafka://`` URLs of the topics it created, as one JSON object on the first
line (for scripts) and as text. Everything lives in memory and ends with the
process; nothing listens beyond 127.0.0.1.
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

DEFAULT_TOPICS = ("impressions:4", "plays:4")


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


def main(argv: list[str] | None = None, out: IO[str] = sys.stdout,
         stop: threading.Event | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataflows.kafka.dev")
    parser.add_argument("--topic", action="append", metavar="NAME:PARTITIONS",
                        help=f"a topic to create (repeatable; default {' '.join(DEFAULT_TOPICS)})")
    parser.add_argument("--brokers", type=int, default=1)
    parser.add_argument("--registry-port", type=int, default=0)
    args = parser.parse_args(argv)
    cluster, registry, info = start(args.topic or DEFAULT_TOPICS, args.brokers,
                                    args.registry_port)
    done = stop or threading.Event()
    if stop is None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
    try:
        print(json.dumps(info), file=out)
        print(f"Kafka (librdkafka mock cluster): {info['bootstrap']}", file=out)
        print(f"Schema Registry: {info['schema_registry']}", file=out)
        for name, topic in info["topics"].items():
            print(f"  topic {name} ({topic['partitions']} partitions): {topic['url']}", file=out)
        print("Ctrl-C stops both (everything is in memory).", file=out, flush=True)
        done.wait()
    finally:
        registry.close()
        cluster.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
