"""librdkafka's mock Kafka cluster: a real Kafka protocol server on 127.0.0.1.

No Kafka broker can be installed on these machines, but the librdkafka inside
the confluent-kafka wheel contains a mock cluster that speaks the Kafka
protocol over TCP; any process connects to it by its bootstrap address. This
module drives it through librdkafka's mock C API over ctypes
(``rd_kafka_mock_cluster_new``, ``rd_kafka_mock_topic_create``): exact
partition counts and no group rebalance delay, which the client property
``test.mock.num.brokers`` does not give. The API is experimental in
librdkafka, hence the pinned confluent-kafka version in ``pyproject.toml``.

Known gaps of the mock (measured in ``tests/dataflows/kafka/``, see
``docs/kafka.md``): no CreateTopics (topics are made here), ``read_committed``
is ignored (records of aborted transactions stay visible to every consumer),
transactional offset commits are not stored, and there is no producer fencing.

Two ways to host one:

- :class:`MockCluster` in this process (tests that run Bytewax in-process, and
  :mod:`dataflows.kafka.dev`);
- :class:`MockClusterProcess`, a helper process (``python -m
  dataflows.kafka.mock_cluster``) for tests whose workers are other processes
  or get killed: it prints ``{"bootstrap": ...}`` and then takes commands on
  stdin, one a line, ``topic NAME PARTITIONS``, answered ``ok`` or ``error:
  ...``; it exits when its stdin closes, so it never outlives its parent.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import subprocess
import sys
from types import TracebackType
from typing import IO, Any

import confluent_kafka

from dataflows.errors import ConfigError
from dataflows.kafka.errors import KafkaClientError

_RD_KAFKA_PRODUCER = 0
_ERRSTR = 512


def _load_librdkafka() -> ctypes.CDLL:
    """The librdkafka bundled in the confluent-kafka wheel (the one the Python
    client itself runs on), with the prototypes used here."""
    here = os.path.dirname(confluent_kafka.__file__)
    libs = os.path.normpath(os.path.join(here, os.pardir, "confluent_kafka.libs"))
    found = sorted(glob.glob(os.path.join(libs, "librdkafka*.so*")))
    if not found:
        msg = (f"cannot find the librdkafka bundled with confluent-kafka (looked in {libs}); "
               "install the confluent-kafka wheel pinned in pyproject.toml")
        raise KafkaClientError(msg)
    lib = ctypes.CDLL(found[0])
    vp, cp, i, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t
    for name, res, args in (
        ("rd_kafka_conf_new", vp, []),
        ("rd_kafka_conf_set", i, [vp, cp, cp, cp, sz]),
        ("rd_kafka_new", vp, [i, vp, cp, sz]),
        ("rd_kafka_destroy", None, [vp]),
        ("rd_kafka_mock_cluster_new", vp, [vp, i]),
        ("rd_kafka_mock_cluster_destroy", None, [vp]),
        ("rd_kafka_mock_cluster_bootstraps", cp, [vp]),
        ("rd_kafka_mock_topic_create", i, [vp, cp, i, i]),
        ("rd_kafka_err2str", cp, [i]),
    ):
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


class MockCluster:
    """A mock Kafka cluster of ``brokers`` brokers inside this process."""

    def __init__(self, brokers: int = 1) -> None:
        if not 1 <= brokers <= 16:
            msg = f"a mock cluster has 1 to 16 brokers, got {brokers}"
            raise ConfigError(msg)
        self._lib = _load_librdkafka()
        errstr = ctypes.create_string_buffer(_ERRSTR)
        conf = self._lib.rd_kafka_conf_new()
        # The handle only owns the cluster; keep its own log quiet.
        self._lib.rd_kafka_conf_set(conf, b"log_level", b"3", errstr, _ERRSTR)
        handle = self._lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, _ERRSTR)
        if not handle:
            msg = f"cannot start librdkafka for the mock cluster: {errstr.value.decode()}"
            raise KafkaClientError(msg)
        self._handle: int | None = handle
        cluster = self._lib.rd_kafka_mock_cluster_new(handle, brokers)
        if not cluster:
            self._lib.rd_kafka_destroy(handle)
            msg = "librdkafka could not start a mock cluster (no free ports on 127.0.0.1?)"
            raise KafkaClientError(msg)
        self._cluster: int | None = cluster
        self.brokers = brokers
        self.bootstrap: str = self._lib.rd_kafka_mock_cluster_bootstraps(cluster).decode()
        self.topics: dict[str, int] = {}

    def create_topic(self, name: str, partitions: int, replication: int = 1) -> None:
        """Create ``name`` with exactly ``partitions`` partitions."""
        if self._cluster is None:
            msg = "the mock cluster is closed"
            raise KafkaClientError(msg)
        if partitions < 1:
            msg = f"topic {name!r} needs at least 1 partition, got {partitions}"
            raise ConfigError(msg)
        err = self._lib.rd_kafka_mock_topic_create(
            self._cluster, name.encode(), partitions, min(replication, self.brokers)
        )
        if err:
            why = self._lib.rd_kafka_err2str(err).decode()
            msg = f"cannot create topic {name!r} on the mock cluster: {why}"
            raise KafkaClientError(msg)
        self.topics[name] = partitions

    def close(self) -> None:
        """Stop the brokers (clients still connected see them go down)."""
        if self._cluster is not None:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._cluster = None
        if self._handle is not None:
            self._lib.rd_kafka_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> MockCluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def parse_topic_spec(spec: str) -> tuple[str, int]:
    """``NAME:PARTITIONS`` (``--topic impressions:4``) as ``(name, partitions)``."""
    name, sep, count = spec.rpartition(":")
    if not sep or not name or not count.isdigit() or int(count) < 1:
        msg = f"topic {spec!r} must be NAME:PARTITIONS with PARTITIONS >= 1 (e.g. impressions:4)"
        raise ConfigError(msg)
    return name, int(count)


class MockClusterProcess:
    """A :class:`MockCluster` in a helper process, driven over its stdin."""

    def __init__(self, brokers: int = 1, topics: dict[str, int] | None = None) -> None:
        # ``-c`` rather than ``-m``: the package imports this module first, and
        # runpy would warn about running a module that is already imported.
        args = [sys.executable, "-c", "import sys; from dataflows.kafka.mock_cluster import main; "
                "sys.exit(main())", "--brokers", str(brokers)]
        for name, parts in (topics or {}).items():
            args += ["--topic", f"{name}:{parts}"]
        self._proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        first = self._read_line()
        try:
            self.bootstrap: str = json.loads(first)["bootstrap"]
        except (ValueError, KeyError) as exc:
            self.close()
            msg = f"the mock cluster process did not start: {first.strip() or 'no output'}"
            raise KafkaClientError(msg) from exc
        self.topics = dict(topics or {})

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read_line(self) -> str:
        assert self._proc.stdout is not None  # noqa: S101 - set by Popen(stdout=PIPE)
        return self._proc.stdout.readline()

    def create_topic(self, name: str, partitions: int) -> None:
        """Create ``name`` with exactly ``partitions`` partitions."""
        stdin: IO[str] | None = self._proc.stdin
        if stdin is None or self._proc.poll() is not None:
            msg = "the mock cluster process has exited"
            raise KafkaClientError(msg)
        stdin.write(f"topic {name} {partitions}\n")
        stdin.flush()
        answer = self._read_line().strip()
        if answer != "ok":
            msg = f"cannot create topic {name!r}: {answer or 'the mock cluster process exited'}"
            raise KafkaClientError(msg)
        self.topics[name] = partitions

    def close(self) -> None:
        """End the process (closing its stdin; killed if it does not exit in 5 s)."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> MockClusterProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _serve(cluster: MockCluster, commands: IO[str], answers: IO[str]) -> None:
    for line in commands:
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] != "topic" or len(parts) != 3 or not parts[2].isdigit():
                answers.write(f"error: unknown command {line.strip()!r} (topic NAME PARTITIONS)\n")
            else:
                cluster.create_topic(parts[1], int(parts[2]))
                answers.write("ok\n")
        except (ConfigError, KafkaClientError) as exc:
            answers.write(f"error: {exc}\n")
        answers.flush()


def main(argv: list[str] | None = None) -> int:
    """The helper process: start, print the bootstrap address, serve stdin."""
    parser = argparse.ArgumentParser(prog="python -m dataflows.kafka.mock_cluster")
    parser.add_argument("--brokers", type=int, default=1)
    parser.add_argument("--topic", action="append", default=[], metavar="NAME:PARTITIONS")
    args = parser.parse_args(argv)
    with MockCluster(args.brokers) as cluster:
        for spec in args.topic:
            cluster.create_topic(*parse_topic_spec(spec))
        print(json.dumps({"bootstrap": cluster.bootstrap}), flush=True)
        _serve(cluster, sys.stdin, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
