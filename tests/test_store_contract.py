"""The JoinStore contract, one test class run against every store.

``MemoryStore`` (the reference) and ``RocksStore`` (a real RocksDB on
``tmp_path``) must behave alike; tests marked ``rocks_only`` check what only a
persistent store can do (data survives commit + reopen).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from joins import Event, JoinStore, MemoryStore, Side, content_id
from state.options import MemoryBudget
from state.store import RocksStore
from tests.budgets import small_budget


def ev(side: Side, key: str, ts: int, tag: str = "", **record: object) -> Event:
    eid = content_id(f"{side}|{key}|{ts}|{tag}".encode())
    return Event(side, key, ts, eid, {"key": key, "ts": ts, **record}, "p0", ts)


@pytest.fixture(scope="module")
def budget() -> MemoryBudget:
    return small_budget(32)


Factory = Callable[[], JoinStore]


@pytest.fixture(params=["memory", "rocks"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, budget: MemoryBudget
) -> Iterator[Factory]:
    """A factory of the store under test; a second call reopens the same state."""
    opened: list[RocksStore] = []

    def rocks() -> JoinStore:
        for s in opened:
            s.close()
        store = RocksStore(tmp_path / "db", budget)
        opened.append(store)
        return store

    if request.param == "memory":
        yield MemoryStore
    else:
        yield rocks
    for s in opened:
        s.close()


def keys_of(entries: list) -> list[tuple[str, int, bytes]]:  # type: ignore[type-arg]
    return [(e.event.key, e.event.ts, e.event.eid) for e in entries]


class TestStoreContract:
    def test_contains_many(self, make_store: Factory) -> None:
        s = make_store()
        a, b = ev("left", "k", 1), ev("left", "k", 2)
        s.insert(a, False, 10)
        s.commit()
        other_side = Event("right", a.key, a.ts, a.eid, {}, "p", 0)
        assert s.contains_many([a, b, other_side]) == [True, False, False]
        assert s.contains_many([]) == []

    def test_read_your_writes_before_commit(self, make_store: Factory) -> None:
        s = make_store()
        a = ev("right", "k", 5, x=1)
        s.insert(a, False, 5)
        assert s.contains_many([a]) == [True]
        assert [e.event for e in s.scan("right", "k", 0, 10)] == [a]
        assert s.count("right") == 1
        s.mark_matched(s.scan("right", "k", 5, 5)[0], 5)
        assert s.scan("right", "k", 5, 5)[0].matched
        assert [e.event for e in s.evict("right", 6, 10)] == [a]
        assert s.count("right") == 0
        assert s.contains_many([a]) == [False]
        s.commit()
        assert s.contains_many([a]) == [False]

    def test_scan_bounds_inclusive_and_time_ordered(self, make_store: Factory) -> None:
        s = make_store()
        times = [7, -3, 0, 12, 5, 5, 20]
        for i, t in enumerate(times[:4]):
            s.insert(ev("left", "k", t, str(i)), False, t)
        s.commit()
        for i, t in enumerate(times[4:], start=4):
            s.insert(ev("left", "k", t, str(i)), False, t)  # pending, merged with committed
        s.insert(ev("left", "kk", 6), False, 6)
        s.insert(ev("right", "k", 6), False, 6)
        got = s.scan("left", "k", 0, 12)
        assert [e.event.ts for e in got] == [0, 5, 5, 7, 12]
        assert keys_of(got) == sorted(keys_of(got))
        assert s.scan("left", "k", 13, 19) == []
        assert s.scan("left", "k", 12, 0) == []
        assert [e.event.ts for e in s.scan("left", "k", -(2**61), 2**61)] == sorted(times)
        assert s.scan("left", "nope", 0, 100) == []
        s.commit()
        assert [e.event.ts for e in s.scan("left", "k", -3, -3)] == [-3]

    def test_mark_matched_visible_and_persisted_by_commit(self, make_store: Factory) -> None:
        s = make_store()
        a = ev("left", "k", 1, note="x")
        s.insert(a, False, 100)
        s.commit()
        assert not s.scan("left", "k", 1, 1)[0].matched
        s.mark_matched(s.scan("left", "k", 1, 1)[0], 100)
        got = s.scan("left", "k", 1, 1)[0]
        assert got.matched
        assert got.event == a
        s.commit()
        assert s.scan("left", "k", 1, 1)[0].matched
        assert s.evict("left", 101, 5)[0].matched

    def test_evict_order_limit_and_bound(self, make_store: Factory) -> None:
        s = make_store()
        bounds = [50, 10, 30, 20, 40]
        for i, b in enumerate(bounds):
            s.insert(ev("left", f"k{i}", b - 5), False, b)
            if i == 2:
                s.commit()
        s.insert(ev("right", "r", 0), False, 0)
        assert s.evict("left", 10, 100) == []  # strictly below
        first = s.evict("left", 41, 2)
        assert [e.event.ts + 5 for e in first] == [10, 20]
        s.commit()
        rest = s.evict("left", 41, 100)
        assert [e.event.ts + 5 for e in rest] == [30, 40]
        assert s.count("left") == 1
        assert s.count("right") == 1
        assert s.evict("left", 2**62, 0) == []
        assert [e.event.ts for e in s.evict("left", 2**62, 10)] == [45]
        assert s.count("left") == 0
        assert s.scan("left", "k0", -(2**61), 2**61) == []

    def test_evicted_entries_carry_the_event(self, make_store: Factory) -> None:
        s = make_store()
        a = ev("right", "k", 3, nested={"a": [1, 2.5, None]}, flag=True, big=2**70)
        s.insert(a, True, 3)
        s.commit()
        (got,) = s.evict("right", 4, 10)
        assert got.event == a
        assert got.matched

    def test_count(self, make_store: Factory) -> None:
        s = make_store()
        for i in range(5):
            s.insert(ev("left", "k", i), False, i)
        s.insert(ev("right", "k", 0), False, 0)
        assert (s.count("left"), s.count("right")) == (5, 1)
        s.commit()
        s.evict("left", 2, 10)
        assert (s.count("left"), s.count("right")) == (3, 1)

    def test_duplicates_across_batches(self, make_store: Factory) -> None:
        s = make_store()
        a = ev("left", "k", 1)
        s.insert(a, False, 10)
        s.commit()
        copy = Event(a.side, a.key, a.ts, a.eid, dict(a.record), "other-partition", 99)
        same_key_other_content = ev("left", "k", 1, "different")
        assert s.contains_many([copy, same_key_other_content]) == [True, False]
        s.evict("left", 11, 10)
        s.commit()
        assert s.contains_many([copy]) == [False]

    def test_reinsert_after_evict_in_same_batch(self, make_store: Factory) -> None:
        s = make_store()
        a = ev("left", "k", 1)
        s.insert(a, False, 1)
        s.commit()
        assert len(s.evict("left", 2, 10)) == 1
        s.insert(a, False, 5)
        assert s.contains_many([a]) == [True]
        assert [e.event for e in s.scan("left", "k", 0, 9)] == [a]
        s.commit()
        assert s.count("left") == 1
        assert [e.event for e in s.evict("left", 6, 10)] == [a]

    def test_persisted_after_commit_and_reopen(
        self, make_store: Factory, request: pytest.FixtureRequest
    ) -> None:
        if "memory" in request.node.callspec.id:
            pytest.skip("memory has no persistence")
        s = make_store()
        a, b = ev("left", "k", 1), ev("right", "k", 2)
        s.insert(a, False, 10)
        s.insert(b, False, 20)
        s.mark_matched(s.scan("right", "k", 2, 2)[0], 20)
        s.commit()
        s.evict("left", 11, 10)
        s.commit()
        s = make_store()  # closes and reopens the same directory
        assert (s.count("left"), s.count("right")) == (0, 1)
        assert s.contains_many([a, b]) == [False, True]
        assert s.scan("right", "k", 2, 2)[0].matched
        assert [e.event for e in s.evict("right", 21, 10)] == [b]

    def test_keys_with_the_same_hash_stay_apart(self, make_store: Factory) -> None:
        # crc32("plumless") == crc32("buckeroo"): same RocksDB prefix, different keys
        s = make_store()
        a, b = ev("left", "plumless", 5), ev("left", "buckeroo", 5)
        s.insert(a, False, 9)
        s.commit()
        s.insert(b, False, 9)
        assert [e.event for e in s.scan("left", "plumless", 0, 10)] == [a]
        assert [e.event for e in s.scan("left", "buckeroo", 0, 10)] == [b]
        s.commit()
        assert [e.event for e in s.scan("left", "buckeroo", 0, 10)] == [b]
        assert s.scan("right", "plumless", 0, 10) == []
