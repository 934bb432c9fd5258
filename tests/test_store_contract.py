"""The JoinStore contract, one test class run against every store.

``MemoryStore`` (the reference) and ``RocksStore`` (a real RocksDB on
``tmp_path``) must behave alike; tests that skip the memory store check what
only a persistent store can do (data survives commit + reopen). Both are made
with buckets of :data:`WIDTH` ms: bucket ``b`` holds the times
``[10 b, 10 b + 10)`` and ``evict(side, below, ...)`` takes the buckets with
``10 (b + 1) <= below``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from joins import Event, Eviction, JoinStore, MemoryStore, Side, content_id
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
WIDTH = 10


@pytest.fixture(params=["memory", "rocks"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, budget: MemoryBudget
) -> Iterator[Factory]:
    """A factory of the store under test; a second call reopens the same state."""
    opened: list[RocksStore] = []

    def rocks() -> JoinStore:
        for s in opened:
            s.close()
        store = RocksStore(tmp_path / "db", budget, bucket_ms=WIDTH)
        opened.append(store)
        return store

    if request.param == "memory":
        yield lambda: MemoryStore(WIDTH)
    else:
        yield rocks
    for s in opened:
        s.close()


def keys_of(entries: list) -> list[tuple[str, int, bytes]]:  # type: ignore[type-arg]
    return [(e.event.key, e.event.ts, e.event.eid) for e in entries]


def evicted(ev: Eviction) -> list[tuple[str, int, bytes]]:
    return sorted((e.key, e.ts, e.eid) for e in ev.events)


class TestStoreContract:
    def test_contains_many(self, make_store: Factory) -> None:
        s = make_store()
        a, b = ev("left", "k", 1), ev("left", "k", 2)
        s.insert(a, False)
        s.commit()
        other_side = Event("right", a.key, a.ts, a.eid, {}, "p", 0)
        assert s.contains_many([a, b, other_side]) == [True, False, False]
        assert s.contains_many([]) == []

    def test_read_your_writes_before_commit(self, make_store: Factory) -> None:
        s = make_store()
        a = ev("right", "k", 5, x=1)
        s.insert(a, False)
        assert s.contains_many([a]) == [True]
        assert [e.event for e in s.scan("right", "k", 0, 10)] == [a]
        assert s.count("right") == 1
        s.mark_matched(s.scan("right", "k", 5, 5)[0])
        assert s.scan("right", "k", 5, 5)[0].matched
        assert s.evict("right", 10, 10, True) == Eviction(matched=1)
        assert s.count("right") == 0
        assert s.contains_many([a]) == [False]
        assert s.scan("right", "k", 0, 10) == []
        s.commit()
        assert s.contains_many([a]) == [False]

    def test_scan_bounds_inclusive_and_time_ordered(self, make_store: Factory) -> None:
        s = make_store()
        times = [7, -3, 0, 12, 5, 5, 20]
        for i, t in enumerate(times[:4]):
            s.insert(ev("left", "k", t, str(i)), False)
        s.commit()
        for i, t in enumerate(times[4:], start=4):
            s.insert(ev("left", "k", t, str(i)), False)  # pending, merged with committed
        s.insert(ev("left", "kk", 6), False)
        s.insert(ev("right", "k", 6), False)
        got = s.scan("left", "k", 0, 12)
        assert [e.event.ts for e in got] == [0, 5, 5, 7, 12]  # across buckets 0 and 1
        assert [(e.event.ts, e.event.eid) for e in got] == sorted(
            (e.event.ts, e.event.eid) for e in got
        )
        assert s.scan("left", "k", 13, 19) == []
        assert s.scan("left", "k", 12, 0) == []
        assert [e.event.ts for e in s.scan("left", "k", -(2**61), 2**61)] == sorted(times)
        assert s.scan("left", "nope", 0, 100) == []
        s.commit()
        assert [e.event.ts for e in s.scan("left", "k", -3, -3)] == [-3]
        assert [e.event.ts for e in s.scan("left", "k", 9, 10)] == []
        assert [e.event.ts for e in s.scan("left", "k", 7, 12)] == [7, 12]

    def test_mark_matched_visible_and_persisted_by_commit(self, make_store: Factory) -> None:
        s = make_store()
        a = ev("left", "k", 1, note="x")
        b = ev("left", "k", 2, note="y")
        s.insert(a, False)
        s.insert(b, False)
        s.commit()
        assert not s.scan("left", "k", 1, 1)[0].matched
        s.mark_matched(s.scan("left", "k", 1, 1)[0])
        got = s.scan("left", "k", 1, 2)
        assert [(e.event, e.matched) for e in got] == [(a, True), (b, False)]
        s.commit()
        assert [e.matched for e in s.scan("left", "k", 0, 9)] == [True, False]
        assert s.evict("left", 10, 5, True) == Eviction(matched=1, unmatched=1, events=[b])

    def test_mark_matched_in_the_batch_that_stored_it(self, make_store: Factory) -> None:
        s = make_store()
        a = ev("right", "k", 3)
        s.insert(a, False)
        s.mark_matched(s.scan("right", "k", 3, 3)[0])
        assert s.scan("right", "k", 3, 3)[0].matched
        s.commit()
        assert s.scan("right", "k", 3, 3)[0].matched
        assert s.evict("right", 10, 5, True) == Eviction(matched=1)

    def test_evict_whole_buckets_below(self, make_store: Factory) -> None:
        s = make_store()
        for i, t in enumerate([25, 3, 19, 10, 9, 0, 30]):
            s.insert(ev("left", f"k{i}", t), False)
            if i == 2:
                s.commit()
        s.insert(ev("right", "r", 0), False)
        # bucket 0 (times 0..9) is due at below = 10, not before
        assert s.evict("left", 9, 100, True) == Eviction()
        first = s.evict("left", 10, 100, True)
        assert sorted(e.ts for e in first.events) == [0, 3, 9]
        assert (first.unmatched, first.more) == (3, False)
        s.commit()
        # 10, 19 (bucket 1) and 25 (bucket 2) are due at 30; 30 is not
        rest = s.evict("left", 34, 100, True)
        assert sorted(e.ts for e in rest.events) == [10, 19, 25]
        assert (s.count("left"), s.count("right")) == (1, 1)
        assert s.evict("left", 2**62, 10, False) == Eviction(unmatched=1)
        assert s.count("left") == 0
        assert s.scan("left", "k0", -(2**61), 2**61) == []

    def test_evict_in_chunks(self, make_store: Factory) -> None:
        s = make_store()
        events = [ev("left", f"k{i % 3}", t, str(i)) for i, t in enumerate(range(0, 30, 2))]
        for e in events:
            s.insert(e, e.ts % 4 == 0)  # matched on arrival: times 0, 4, 8, ...
        s.commit()
        got: list[Eviction] = []
        while True:
            chunk = s.evict("left", 30, 4, True)
            s.commit()
            got.append(chunk)
            assert s.count("left") == len(events) - sum(c.removed for c in got)
            if not chunk.more:
                break
        assert [c.removed for c in got] == [4, 4, 4, 3]
        assert sum(c.matched for c in got) == 8
        assert sorted(e.ts for c in got for e in c.events) == [t for t in range(2, 30, 4)]
        assert s.count("left") == 0
        assert s.evict("left", 30, 4, True) == Eviction()

    def test_evict_stops_at_the_limit_between_buckets(self, make_store: Factory) -> None:
        s = make_store()
        for t in (1, 2, 11, 12):
            s.insert(ev("right", "k", t), False)
        s.commit()
        first = s.evict("right", 20, 2, False)
        assert (first.removed, first.more, first.events) == (2, True, [])
        assert [e.event.ts for e in s.scan("right", "k", 0, 20)] == [11, 12]
        last = s.evict("right", 20, 2, False)
        assert (last.removed, last.more) == (2, False)

    def test_evicted_events_are_whole(self, make_store: Factory) -> None:
        s = make_store()
        a = ev("right", "k", 3, nested={"a": [1, 2.5, None]}, flag=True, big=2**70)
        s.insert(a, False)
        s.commit()
        (got,) = s.evict("right", 10, 10, True).events
        assert got == a
        assert got.record == a.record

    def test_count(self, make_store: Factory) -> None:
        s = make_store()
        for i in range(5):
            s.insert(ev("left", "k", i * 5), False)
        s.insert(ev("right", "k", 0), False)
        assert (s.count("left"), s.count("right")) == (5, 1)
        s.commit()
        s.evict("left", 10, 10, False)
        assert (s.count("left"), s.count("right")) == (3, 1)

    def test_duplicates_across_batches(self, make_store: Factory) -> None:
        s = make_store()
        a = ev("left", "k", 1)
        s.insert(a, False)
        s.commit()
        copy = Event(a.side, a.key, a.ts, a.eid, dict(a.record), "other-partition", 99)
        same_key_other_content = ev("left", "k", 1, "different")
        assert s.contains_many([copy, same_key_other_content]) == [True, False]
        s.evict("left", 10, 10, False)
        s.commit()
        assert s.contains_many([copy]) == [False]

    def test_reinsert_after_evict_in_same_batch(self, make_store: Factory) -> None:
        s = make_store()
        a = ev("left", "k", 1)
        s.insert(a, False)
        s.commit()
        assert s.evict("left", 10, 10, False).removed == 1
        s.insert(a, False)
        assert s.contains_many([a]) == [True]
        assert [e.event for e in s.scan("left", "k", 0, 9)] == [a]
        s.commit()
        assert s.count("left") == 1
        assert s.evict("left", 10, 10, True).events == [a]

    def test_insert_into_a_partly_evicted_bucket(self, make_store: Factory) -> None:
        s = make_store()
        for t in (1, 2, 3):
            s.insert(ev("left", "k", t), False)
        s.commit()
        assert s.evict("left", 10, 2, False).more
        late_comer = ev("left", "a", 0)  # sorts before where the eviction stopped
        s.insert(late_comer, False)
        s.commit()
        rest = s.evict("left", 10, 10, True)
        assert sorted(e.ts for e in rest.events) == [0, 3]
        assert s.count("left") == 0

    def test_persisted_after_commit_and_reopen(
        self, make_store: Factory, request: pytest.FixtureRequest
    ) -> None:
        if "memory" in request.node.callspec.id:
            pytest.skip("memory has no persistence")
        s = make_store()
        a, b, c = ev("left", "k", 1), ev("right", "k", 2), ev("right", "k", 12)
        s.insert(a, False)
        s.insert(b, False)
        s.insert(c, True)
        s.mark_matched(s.scan("right", "k", 2, 2)[0])
        s.commit()
        s.evict("left", 10, 10, False)
        s.commit()
        s = make_store()  # closes and reopens the same directory
        assert (s.count("left"), s.count("right")) == (0, 2)
        assert s.contains_many([a, b, c]) == [False, True, True]
        assert [e.matched for e in s.scan("right", "k", 0, 20)] == [True, True]
        assert s.evict("right", 20, 10, True) == Eviction(matched=2)

    def test_keys_with_the_same_hash_stay_apart(self, make_store: Factory) -> None:
        # crc32("plumless") == crc32("buckeroo"): same RocksDB prefix, different keys
        s = make_store()
        a, b = ev("left", "plumless", 5), ev("left", "buckeroo", 5)
        s.insert(a, False)
        s.commit()
        s.insert(b, False)
        assert [e.event for e in s.scan("left", "plumless", 0, 10)] == [a]
        assert [e.event for e in s.scan("left", "buckeroo", 0, 10)] == [b]
        s.commit()
        assert [e.event for e in s.scan("left", "buckeroo", 0, 10)] == [b]
        assert s.scan("right", "plumless", 0, 10) == []
