"""The records of a Kafka sink shard's transactions, kept on disk until each
transaction is known to be committed.

A transactional Kafka sink (:mod:`dataflows.sinks.kafka`) commits an epoch's
transaction only at the next snapshot, once the epoch's recovery snapshot is
durable. A crash between the two leaves a durable epoch whose transaction the
resume's ``init_transactions`` aborts; its records are then sent again from
here. One directory per output topic and shard holds:

- ``txn-<seq>.spool``: the records of transaction ``seq``, written as they are
  produced and made durable (``fsync``) when the epoch closes;
- ``committed``: the highest ``seq`` whose commit the broker acknowledged,
  replaced atomically after each commit (a resume reads it to tell a committed
  transaction from an aborted one); spool files up to it are deleted;
- ``committed.log``: the ``txn`` label of every committed transaction, a line
  each (:data:`COMMITTED_LOG`): the committed set, for readers that cannot rely
  on ``read_committed`` (librdkafka's mock cluster shows aborted records) and
  for ``streamjoin validate``.

Record framing (big-endian): ``u32`` key length (``0xFFFFFFFF``: no key), the
key, ``u32`` value length (``0xFFFFFFFF``: no value), the value, ``u16``
header count, then per header ``u16`` name length, the name, ``u32`` value
length, the value.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import IO

from dataflows.kafka.errors import KafkaClientError

_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_NONE = 0xFFFFFFFF
COMMITTED = "committed"
COMMITTED_LOG = "committed.log"

#: One spooled record: key, value, headers.
SpooledRecord = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def _blob(data: bytes | None) -> bytes:
    return _U32.pack(_NONE) if data is None else _U32.pack(len(data)) + data


class SpoolWriter:
    """Appends the records of one transaction; :meth:`seal` makes them durable."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.records = 0
        self._fo: IO[bytes] | None = open(path, "wb")

    def append(self, key: bytes | None, value: bytes | None,
               headers: list[tuple[str, bytes]]) -> None:
        assert self._fo is not None  # noqa: S101 - sealed writers get no records
        parts = [_blob(key), _blob(value), _U16.pack(len(headers))]
        for name, data in headers:
            raw = name.encode()
            parts += [_U16.pack(len(raw)), raw, _U32.pack(len(data)), data]
        self._fo.write(b"".join(parts))
        self.records += 1

    def seal(self) -> None:
        """Flush and ``fsync``: the records survive a crash from here on."""
        if self._fo is None:
            return
        self._fo.flush()
        os.fsync(self._fo.fileno())
        self._fo.close()
        self._fo = None

    def discard(self) -> None:
        """Close and delete (a transaction that will never be committed)."""
        if self._fo is not None:
            self._fo.close()
            self._fo = None
        if os.path.exists(self.path):
            os.remove(self.path)


def committed_labels(spool_root: str) -> set[str]:
    """The ``txn`` labels of every committed transaction under a spool root
    (``RECOVERY/kafka-spool``: one directory per topic and shard)."""
    labels: set[str] = set()
    for folder, _dirs, files in os.walk(spool_root):
        if COMMITTED_LOG in files:
            with open(os.path.join(folder, COMMITTED_LOG), encoding="utf-8") as f:
                labels.update(line.strip() for line in f if line.strip())
    return labels


def _read_exact(fo: IO[bytes], n: int, path: str) -> bytes:
    data = fo.read(n)
    if len(data) != n:
        msg = (f"Kafka sink spool {path} is cut short: its transaction's records cannot be "
               "sent again; the records of that epoch may be missing from the output topic")
        raise KafkaClientError(msg)
    return data


def _read_blob(fo: IO[bytes], path: str) -> bytes | None:
    (n,) = _U32.unpack(_read_exact(fo, 4, path))
    return None if n == _NONE else _read_exact(fo, n, path)


class TxnSpool:
    """The spool directory of one output topic and shard."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def path(self, seq: int) -> str:
        return os.path.join(self.directory, f"txn-{seq:012d}.spool")

    def writer(self, seq: int) -> SpoolWriter:
        return SpoolWriter(self.path(seq))

    def read(self, seq: int) -> Iterator[SpooledRecord]:
        """The records of transaction ``seq``, in the order they were produced."""
        path = self.path(seq)
        try:
            fo = open(path, "rb")
        except FileNotFoundError as exc:
            msg = (f"Kafka sink spool {path} is missing: transaction {seq} was not committed "
                   "and cannot be sent again; that epoch's records may be missing from the "
                   "output topic")
            raise KafkaClientError(msg) from exc
        with fo:
            while True:
                head = fo.read(4)
                if not head:
                    return
                (n,) = _U32.unpack(head + _read_exact(fo, 4 - len(head), path))
                key = None if n == _NONE else _read_exact(fo, n, path)
                value = _read_blob(fo, path)
                (count,) = _U16.unpack(_read_exact(fo, 2, path))
                headers = []
                for _ in range(count):
                    (n,) = _U16.unpack(_read_exact(fo, 2, path))
                    name = _read_exact(fo, n, path).decode()
                    data = _read_blob(fo, path)
                    headers.append((name, data or b""))
                yield key, value, headers

    def committed(self) -> int:
        """The highest transaction the broker acknowledged as committed (0: none)."""
        try:
            with open(os.path.join(self.directory, COMMITTED), encoding="ascii") as f:
                return int(f.read().strip() or 0)
        except FileNotFoundError:
            return 0

    def mark_committed(self, seq: int, label: str) -> None:
        """Record that transaction ``seq`` (``label``) is committed (atomic and
        durable), and delete the spool files up to it."""
        with open(os.path.join(self.directory, COMMITTED_LOG), "a", encoding="utf-8") as log:
            log.write(label + "\n")
        final = os.path.join(self.directory, COMMITTED)
        tmp = final + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(str(seq))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.discard_through(seq)

    def discard_through(self, seq: int) -> None:
        """Delete the spool files of transactions up to ``seq``."""
        for name in os.listdir(self.directory):
            if name.startswith("txn-") and name.endswith(".spool"):
                try:
                    number = int(name[4:-6])
                except ValueError:
                    continue
                if number <= seq:
                    os.remove(os.path.join(self.directory, name))
