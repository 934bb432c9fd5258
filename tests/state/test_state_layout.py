"""Round trips and ordering of the byte layouts in ``state.layout``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from state import layout
from state.errors import StateError

times = st.integers(-(2**63), 2**63 - 1)
sides = st.sampled_from(["left", "right"])
keys = st.text(max_size=40)
eids = st.binary(min_size=8, max_size=8)


@given(times)
def test_time_round_trip(ts: int) -> None:
    assert layout.decode_time(layout.encode_time(ts)) == ts


@given(times, times)
def test_time_byte_order_is_time_order(a: int, b: int) -> None:
    assert (layout.encode_time(a) < layout.encode_time(b)) == (a < b)


def test_time_out_of_range_is_a_state_error() -> None:
    with pytest.raises(StateError, match="outside"):
        layout.encode_time(2**63)


buckets = st.integers(-(2**61), 2**61)


@given(sides, buckets, keys, times, eids)
def test_entry_key_round_trip(side: str, bucket: int, key: str, ts: int, eid: bytes) -> None:
    k = layout.entry_key(side, bucket, key, ts, eid)  # type: ignore[arg-type]
    assert layout.decode_entry_key(k) == (side, bucket, key, ts, eid)
    assert k.startswith(layout.key_prefix(side, bucket, key))  # type: ignore[arg-type]
    begin, end = layout.bucket_range(side, bucket)  # type: ignore[arg-type]
    assert begin <= k < layout.flag_key(k) < end


@given(keys, st.lists(st.tuples(times, eids), min_size=2, max_size=10))
def test_entries_of_a_key_sort_by_time_then_eid(key: str, rows: list[tuple[int, bytes]]) -> None:
    encoded = sorted(layout.entry_key("left", 7, key, ts, eid) for ts, eid in rows)
    assert [layout.decode_entry_key(k)[3:] for k in encoded] == sorted(rows)


@given(st.lists(st.tuples(keys, times, eids), min_size=2, max_size=12, unique=True))
def test_a_flag_sorts_right_after_its_entry(rows: list[tuple[str, int, bytes]]) -> None:
    """Nothing sorts between an entry and its flag: a scan meets the flag next."""
    entries = sorted(layout.entry_key("right", 3, k, ts, eid) for k, ts, eid in rows)
    mixed = sorted(entries + [layout.flag_key(e) for e in entries])
    assert mixed[0::2] == entries
    assert mixed[1::2] == [layout.flag_key(e) for e in entries]


@given(sides, buckets, buckets, keys, times, eids)
def test_buckets_are_disjoint_ranges_in_bucket_order(
    side: str, a: int, b: int, key: str, ts: int, eid: bytes
) -> None:
    ka = layout.entry_key(side, a, key, ts, eid)  # type: ignore[arg-type]
    kb = layout.entry_key(side, b, key, ts, eid)  # type: ignore[arg-type]
    assert (ka < kb) == (a < b)
    begin, end = layout.bucket_range(side, a)  # type: ignore[arg-type]
    assert (begin <= kb < end) == (a == b)
    other = "left" if side == "right" else "right"
    lo, hi = layout.bucket_range(other, a)  # type: ignore[arg-type]
    assert not lo <= ka < hi


@given(keys, keys, times, times, eids)
def test_scan_bounds_select_exactly_the_key_and_interval(
    key: str, other: str, lo: int, hi: int, eid: bytes
) -> None:
    lower, upper = layout.scan_bounds(layout.key_prefix("right", 5, key), lo, hi)
    for ts in (lo, hi, lo - 1, hi + 1):
        if -(2**63) <= ts < 2**63:
            k = layout.entry_key("right", 5, key, ts, eid)
            assert (lower <= k < upper) == (lo <= ts <= hi)
            assert (lower <= layout.flag_key(k) < upper) == (lo <= ts <= hi)
            if other != key:
                k2 = layout.entry_key("right", 5, other, ts, eid)
                assert not lower <= k2 < upper
            assert not lower <= layout.entry_key("left", 5, key, ts, eid) < upper
            assert not lower <= layout.entry_key("right", 6, key, ts, eid) < upper


@given(sides, buckets, st.integers(0, 2**64 - 1), times)
def test_bucket_meta_round_trip(side: str, bucket: int, count: int, ts: int) -> None:
    k = layout.bucket_meta_key(side, bucket)  # type: ignore[arg-type]
    assert layout.decode_bucket_meta_key(k) == (side, bucket)
    assert k.startswith(layout.BUCKET_META_PREFIX)
    assert layout.decode_bucket_meta(layout.encode_bucket_meta(count, ts)) == (count, ts)


@given(st.integers(0, 2**64 - 1))
def test_u64_round_trip(n: int) -> None:
    assert layout.decode_u64(layout.encode_u64(n)) == n


def test_families_do_not_overlap() -> None:
    entry = layout.entry_key("left", 0, "k", 0, b"e" * 8)
    firsts = {entry[:1], layout.entry_key("right", 0, "k", 0, b"e" * 8)[:1]}
    firsts |= {layout.bucket_meta_key("left", 0)[:1]}
    assert len(firsts) == 3
    metas = [
        layout.version_key(),
        layout.bucket_width_key(),
        layout.schema_key(b"f" * 8),
        layout.bucket_meta_key("left", 0),
    ]
    for a in metas:
        for b in metas:
            assert a == b or not b.startswith(a)


def test_bad_keys_are_state_errors() -> None:
    with pytest.raises(StateError):
        layout.decode_entry_key(b"Q\x00")
    with pytest.raises(StateError):
        layout.decode_bucket_meta_key(b"Mlivexx")
    with pytest.raises(StateError, match="65535"):
        layout.key_prefix("left", 0, "x" * 70_000)
    with pytest.raises(StateError, match="8 bytes"):
        layout.entry_key("left", 0, "k", 0, b"short")
