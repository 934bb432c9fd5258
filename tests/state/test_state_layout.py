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


@given(sides, keys, times, eids)
def test_entry_key_round_trip(side: str, key: str, ts: int, eid: bytes) -> None:
    k = layout.entry_key(side, key, ts, eid)  # type: ignore[arg-type]
    assert layout.decode_entry_key(k) == (side, key, ts, eid)
    assert k.startswith(layout.key_prefix(side, key))  # type: ignore[arg-type]


@given(keys, st.lists(st.tuples(times, eids), min_size=2, max_size=10))
def test_entries_of_a_key_sort_by_time_then_eid(key: str, rows: list[tuple[int, bytes]]) -> None:
    encoded = sorted(layout.entry_key("left", key, ts, eid) for ts, eid in rows)
    assert [layout.decode_entry_key(k)[2:] for k in encoded] == sorted(rows)


@given(keys, keys, times, times, eids)
def test_scan_bounds_select_exactly_the_key_and_interval(
    key: str, other: str, lo: int, hi: int, eid: bytes
) -> None:
    lower, upper = layout.scan_bounds(layout.key_prefix("right", key), lo, hi)
    for ts in (lo, hi, lo - 1, hi + 1):
        if -(2**63) <= ts < 2**63:
            k = layout.entry_key("right", key, ts, eid)
            assert (lower <= k < upper) == (lo <= ts <= hi)
            if other != key:
                k2 = layout.entry_key("right", other, ts, eid)
                assert not lower <= k2 < upper
            k3 = layout.entry_key("left", key, ts, eid)
            assert not lower <= k3 < upper


@given(sides, times, sides, keys, times, eids)
def test_expiry_key_round_trip(
    side: str, bound: int, eside: str, key: str, ts: int, eid: bytes
) -> None:
    entry = layout.entry_key(eside, key, ts, eid)  # type: ignore[arg-type]
    x = layout.expiry_key(side, bound, entry)  # type: ignore[arg-type]
    assert layout.decode_expiry_key(x) == (side, bound, entry)
    assert x.startswith(layout.expiry_prefix(side))  # type: ignore[arg-type]
    upper_above = layout.expiry_upper(side, bound + 1)  # type: ignore[arg-type]
    assert layout.expiry_upper(side, bound) <= x < upper_above  # type: ignore[arg-type]


@given(times, times, eids)
def test_expiry_order_is_bound_order(a: int, b: int, eid: bytes) -> None:
    entry = layout.entry_key("left", "k", 0, eid)
    xa, xb = layout.expiry_key("left", a, entry), layout.expiry_key("left", b, entry)
    assert (xa < xb) == (a < b)


@given(st.integers(0, 2**64 - 1))
def test_count_round_trip(n: int) -> None:
    assert layout.decode_count(layout.encode_count(n)) == n


def test_families_do_not_overlap() -> None:
    entry = layout.entry_key("left", "k", 0, b"e" * 8)
    firsts = {entry[:1], layout.entry_key("right", "k", 0, b"e" * 8)[:1]}
    firsts |= {layout.expiry_key("left", 0, entry)[:1], layout.count_key("left")[:1]}
    assert len(firsts) == 4


def test_bad_keys_are_state_errors() -> None:
    with pytest.raises(StateError):
        layout.decode_entry_key(b"Q\x00")
    with pytest.raises(StateError):
        layout.decode_expiry_key(b"Lxx")
    with pytest.raises(StateError, match="65535"):
        layout.key_prefix("left", "x" * 70_000)
