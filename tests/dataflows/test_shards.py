"""Shard routing: the Python SipHash-1-3 agrees with Bytewax's own routing, and
the chosen shard names spread evenly over every worker count from 1 to 8."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic
from bytewax.testing import TestingSource, cluster_main

from dataflows.shards import (
    BALANCED_UP_TO,
    bytewax_worker,
    shard_names,
    shard_of,
    shards_of_worker,
    siphash13,
    stable_hash,
)


class _Once(StatefulBatchLogic[str, str, None]):
    def on_batch(self, values: list[str]) -> tuple[list[str], bool]:
        return values[:1], StatefulBatchLogic.DISCARD

    def snapshot(self) -> None:
        return None


def bytewax_routes(keys: list[str], workers: int) -> dict[str, int]:
    """Which worker a real Bytewax cluster runs each state key on."""
    flow = Dataflow("routes")
    keyed = op.key_on("key", op.input("in", flow, TestingSource(keys)), lambda k: k)
    out = op.stateful_batch("once", keyed, lambda _resume: _Once())
    seen: dict[str, int] = {}

    def record(step_id: str, item: Any, epoch: int, worker: int) -> None:
        seen[item[0]] = worker

    op.inspect_debug("where", out, record)
    cluster_main(flow, [], 0, epoch_interval=timedelta(seconds=1), worker_count_per_proc=workers)
    return seen


@pytest.mark.parametrize("workers", [3, 5])
def test_python_routing_matches_bytewax(workers: int) -> None:
    keys = [f"k{i}" for i in range(60)]
    keys += ["", "exactly8", "sixteen-bytes-ab", "ünïcode", *shard_names(8)]
    seen = bytewax_routes(keys, workers)
    assert seen == {k: bytewax_worker(k, workers) for k in keys}


def test_siphash13_reference_values() -> None:
    # Rust: `DefaultHasher::new().finish()` (SipHash-1-3, zero keys, no input).
    assert siphash13(b"") == 0xD1FBA762150C532C


@pytest.mark.parametrize("shards", [8, 16, 32, 64, 128])
def test_shard_names_balance_for_one_to_eight_workers(shards: int) -> None:
    names = shard_names(shards)
    assert len(set(names)) == shards
    for workers in range(1, BALANCED_UP_TO + 1):
        loads = [len(shards_of_worker(shards, w, workers)) for w in range(workers)]
        assert sum(loads) == shards
        assert max(loads) - min(loads) <= 1, (workers, loads)


def test_names_are_deterministic_and_sort_in_index_order() -> None:
    assert shard_names(64)[:3] == ("s0000-0", "s0001-2", "s0002-1")
    assert list(shard_names(64)) == sorted(shard_names(64))


def test_keys_spread_over_shards_stably() -> None:
    counts = [0] * 16
    for i in range(16_000):
        counts[shard_of(f"user{i}:title{i % 7}", 16)] += 1
    assert min(counts) > 800
    assert max(counts) < 1_200
    # Stable across processes and runs (not Python's salted hash()).
    assert stable_hash("k1") == 0x2041819DB7A4DF99
