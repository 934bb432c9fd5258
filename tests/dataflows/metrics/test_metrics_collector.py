"""The scrape-time readers: StateCollector over real stores, and the hot-key estimate."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from dataflows.metrics import HOT_KEY_RANKS, ROCKSDB_PROPERTIES, JoinMetrics, StateCollector
from dataflows.metrics.hotkeys import HotKeys
from joins import Event, IntervalJoiner, JoinSpec, MemoryStore, content_id
from joins.events import Side
from state.store import RocksStore

SPEC = JoinSpec(lower_ms=0, upper_ms=60_000, how="inner", max_out_of_orderness_ms=100_000)


def event(side: Side, key: str, ts: int, n: int) -> Event:
    return Event(side, key, ts, content_id(f"{side}{key}{ts}{n}".encode()), {"n": n}, "p", n)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, labels)
    assert got is not None, f"no sample {name}{labels}"
    return got


def test_rocks_store_read_at_scrape_time(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = JoinMetrics(registry, spec=SPEC, process_collector=False)
    store = RocksStore(tmp_path / "s0")
    try:
        joiner = IntervalJoiner(SPEC, store, ["p"], lambda: 0)
        batch = [event("left", f"k{i % 7}", 10_000 + i, i) for i in range(300)]
        batch += [event("right", f"k{i % 7}", 20_000 + i, i) for i in range(50)]
        joiner.process(batch)
        metrics.state.register("s0", store)
        metrics.state.register("s1", MemoryStore())
        assert value(registry, "streamjoin_state_entries", shard="s0", side="left") == 300
        assert value(registry, "streamjoin_state_entries", shard="s0", side="right") == 50
        assert value(registry, "streamjoin_state_entries", shard="s1", side="left") == 0
        oldest = "streamjoin_state_oldest_event_time_seconds"
        assert value(registry, oldest, shard="s0", side="left") == 10.0
        assert value(registry, oldest, shard="s0", side="right") == 20.0
        assert registry.get_sample_value(oldest, {"shard": "s1", "side": "left"}) is None
        # Entries change without any call on the metrics: read at scrape time.
        joiner.process([event("left", "late-comer", 9_000, 1)])
        assert value(registry, oldest, shard="s0", side="left") == 9.0
        disk = value(registry, "streamjoin_state_disk_bytes", shard="s0")
        mem = value(registry, "streamjoin_state_memtable_bytes", shard="s0")
        assert disk > 0
        assert mem > 0
        props = store.rocksdb_properties()
        for prop, (name, _doc) in ROCKSDB_PROPERTIES.items():
            if prop in props:
                assert value(registry, name, shard="s0") == props[prop], name
        assert value(registry, "streamjoin_rocksdb_estimated_keys", shard="s0") > 0
        cache = value(registry, "streamjoin_rocksdb_block_cache_usage_bytes")
        assert cache == store.rocksdb_properties()["rocksdb.block-cache-usage"] > 0
        capacity = value(registry, "streamjoin_rocksdb_block_cache_capacity_bytes")
        assert capacity == store.budget.options.block_cache_bytes
        metrics.state.unregister("s0")
        assert registry.get_sample_value("streamjoin_state_disk_bytes", {"shard": "s0"}) is None
        assert metrics.state.shards == ("s1",)
    finally:
        store.close()


class _Broken:
    def stats(self) -> object:
        msg = "DB closed"
        raise RuntimeError(msg)

    def rocksdb_properties(self) -> Mapping[str, int]:
        return {}


def test_a_failing_store_is_counted_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    collector = StateCollector()
    registry.register(collector)
    collector.register("bad", _Broken())  # type: ignore[arg-type]
    collector.register("good", MemoryStore())
    assert value(registry, "streamjoin_state_scrape_errors_total") == 1
    assert value(registry, "streamjoin_state_entries", shard="good", side="right") == 0
    assert "shard bad" in caplog.text
    assert value(registry, "streamjoin_state_scrape_duration_seconds") >= 0


def test_register_refuses_what_is_not_a_store() -> None:
    with pytest.raises(TypeError, match="neither"):
        StateCollector().register("s0", object())  # type: ignore[arg-type]


def test_the_lock_of_a_store_is_held_while_reading() -> None:
    lock = threading.Lock()
    held: list[bool] = []

    class Store:  # a CountingStore (MemoryStore is compiled: no Python subclasses)
        def count(self, side: Side) -> int:
            held.append(lock.locked())
            return 0

    registry = CollectorRegistry()
    collector = StateCollector()
    registry.register(collector)
    collector.register("s0", Store(), lock=lock)
    value(registry, "streamjoin_state_entries", shard="s0", side="left")
    assert held
    assert all(held)
    assert not lock.locked()


def test_hot_keys_find_a_skewed_key_without_naming_it() -> None:
    registry = CollectorRegistry()
    spec = JoinSpec(lower_ms=0, upper_ms=10_000, how="inner", max_out_of_orderness_ms=0)
    metrics = JoinMetrics(registry, spec=spec, process_collector=False)
    rng = random.Random(5)
    # 1 event/ms in all; 30% for "hot", the rest spread over 10,000 keys.
    joiner = IntervalJoiner(spec, MemoryStore(1), ["p"], lambda: 0)  # evicted at each bound
    for start in range(0, 40_000, 500):
        batch = [
            event("left", "hot" if rng.random() < 0.3 else f"k{rng.randrange(10_000)}", t, t)
            for t in range(start, start + 500)
        ]
        out = joiner.process(batch)
        metrics.observe_batch("s0", out, joiner.counters, 0.001, batch)
    # "hot" holds ~0.3 * 10 s * 1 event/ms = 3,000 of ~10,000 retained entries.
    retained = joiner.store.count("left")
    top = value(registry, "streamjoin_hot_key_entries", side="left", rank="1")
    assert 0.8 * 3_000 < top < 1.2 * 3_000, top
    assert 9_000 < retained < 11_000
    share = value(registry, "streamjoin_hot_key_share", side="left")
    assert 0.25 < share < 0.40
    assert value(registry, "streamjoin_hot_key_entries", side="left", rank="2") < 0.1 * top
    assert value(registry, "streamjoin_hot_key_entries", side="right", rank="1") == 0
    for rank in range(1, HOT_KEY_RANKS + 1):
        assert value(registry, "streamjoin_hot_key_entries", side="left", rank=str(rank)) >= 0


def test_hot_keys_forget_a_key_that_went_quiet() -> None:
    hot = HotKeys(1_000, capacity=8)
    hot.add(["a"] * 500, 0)
    assert hot.top(1)[0][0] == pytest.approx(500)
    for t in range(1, 20):
        hot.add(["b"] * 10, t * 1_000)
    values, _ = hot.top(2)
    assert values[0] > 9  # b: ~10 per horizon, decayed
    assert values[1] < 1e-3 * 500  # a: 19 horizons ago
    # Far in the future: weights are rescaled, never overflow.
    hot.add(["c"] * 3, 10**9)
    assert hot.top(1)[0] == [pytest.approx(3)]
    assert hot.share(1) == pytest.approx(1.0)


def test_hot_keys_stay_bounded() -> None:
    hot = HotKeys(60_000, capacity=16)
    for i in range(100):
        hot.add([f"k{i}-{j}" for j in range(100)], i)
    assert len(hot._counts) <= 16
    assert hot.share(5) < 0.05
