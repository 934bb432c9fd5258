"""Per-bucket key filters: probes skip the RocksDB seeks of buckets that cannot
hold the key, and never miss an entry.

Real RocksDB on ``tmp_path``. The joiner's properties (``tests/joins``) run the
RocksDB store with filters through random streams against a brute-force join;
these pin the filter itself and what the store does with it.
"""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from joins import Event, content_id
from state.key_filter import MIN_CAPACITY, KeyFilter
from state.store import RocksStore
from tests.budgets import small_budget


@settings(max_examples=50, deadline=None)
@given(keys=st.lists(st.text(max_size=12), max_size=3000), capacity=st.integers(0, 5000))
def test_a_filter_holds_every_key_added(keys: list[str], capacity: int) -> None:
    f = KeyFilter(capacity)
    for k in keys:
        f.add(k)
    assert all(f.may_hold(k) for k in keys)


def test_a_filter_grows_and_stays_selective() -> None:
    """Started far too small, it adds parts and keeps few false positives."""
    f = KeyFilter(0)
    for i in range(50 * MIN_CAPACITY):
        f.add(f"in{i}")
    assert all(f.may_hold(f"in{i}") for i in range(0, 50 * MIN_CAPACITY, 7))
    wrong = sum(f.may_hold(f"out{i}") for i in range(20_000))
    assert wrong < 20_000 * 0.08, wrong  # ~1% per part, six parts
    assert f.bytes < 50 * MIN_CAPACITY * 4  # about 2.5 bytes a key


def ev(side: str, key: str, ts: int) -> Event:
    return Event(side, key, ts, content_id(f"{side}{key}{ts}".encode()), {"k": key}, "p", ts)  # type: ignore[arg-type]


def test_probes_skip_buckets_without_the_key(tmp_path: Path) -> None:
    with RocksStore(tmp_path / "db", small_budget(), bucket_ms=100) as store:
        for b in range(4):  # four buckets of "right", k0..k99 in each, "x" in bucket 2 only
            for i in range(100):
                store.insert(ev("right", f"k{i}", b * 100 + i % 100), False)
        store.insert(ev("right", "x", 250), False)
        store.commit()
        seeks, skipped = store.seeks, store.seeks_skipped
        found = store.scan("right", "x", 0, 399)
        assert [e.event.ts for e in found] == [250]
        assert (store.seeks - seeks, store.seeks_skipped - skipped) == (1, 3)
        assert store.scan("right", "absent", 0, 399) == []
        assert store.seeks_skipped - skipped == 7
        # an entry of this batch (the overlay) counts too
        store.insert(ev("right", "y", 120), False)
        assert [e.event.ts for e in store.scan("right", "y", 0, 399)] == [120]


def test_the_duplicate_check_skips_buckets_without_the_key(tmp_path: Path) -> None:
    with RocksStore(tmp_path / "db", small_budget(), bucket_ms=100) as store:
        stored = [ev("left", f"k{i}", i) for i in range(50)]
        for e in stored:
            store.insert(e, False)
        store.commit()
        fresh = [ev("left", f"n{i}", i) for i in range(50)]
        assert store.contains_many(stored + fresh) == [True] * 50 + [False] * 50


def test_a_reopened_store_finds_its_entries_without_filters(tmp_path: Path) -> None:
    """Buckets found in the DB at open have no filter (their keys are not read):
    probed by seeks, found all the same; buckets opened later have one."""
    rng = random.Random(3)
    events = [ev("left", f"k{rng.randrange(40)}", rng.randrange(300)) for _ in range(400)]
    events = list({e.identity: e for e in events}.values())
    with RocksStore(tmp_path / "db", small_budget(), bucket_ms=100) as store:
        for e in events:
            store.insert(e, False)
        store.commit()
        checkpoint = store.checkpoint(tmp_path / "ckpt")
    with RocksStore.open_clone(checkpoint, tmp_path / "clone", small_budget()) as back:
        for key in {e.key for e in events}:
            want = sorted(e.ts for e in events if e.key == key)
            assert [x.event.ts for x in back.scan("left", key, 0, 299)] == want
        assert back.seeks_skipped == 0
        assert back.contains_many(events) == [True] * len(events)
        back.insert(ev("left", "late", 450), False)  # a new bucket: filtered
        back.scan("left", "other", 400, 499)
        assert back.seeks_skipped == 1
