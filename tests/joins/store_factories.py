"""The stores every join property runs against, by name."""

from __future__ import annotations

import tempfile
from collections.abc import Callable

from joins import JoinStore, MemoryStore


def _rocks() -> JoinStore:
    from state.store import RocksStore  # the lead wires the RocksDB store in here

    return RocksStore(tempfile.mkdtemp(prefix="sj-prop-"))  # type: ignore[call-arg]


STORES: dict[str, Callable[[], JoinStore]] = {"memory": MemoryStore}
