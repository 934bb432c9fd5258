"""Durations: the flag grammar, its errors, and the round trip through format_duration."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataflows.config import format_duration, parse_duration
from dataflows.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("5s", 5_000),
        ("30m", 1_800_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
        ("0", 0),
        ("-0", 0),
        ("-5s", -5_000),
        ("+5s", 5_000),
        ("1h30m", 5_400_000),
        ("1d2h3m4s5ms", 93_784_005),
        (" 10s ", 10_000),
        (42, 42),
    ],
)
def test_parses(text: str | int, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    "text", ["", "-", "5 s", "1.5s", "5sec", "s", "30m1h", "1s1s", "5us", "\u0661s", "x", True]
)
def test_rejects_with_the_value_and_what_is_allowed(text: str) -> None:
    with pytest.raises(ConfigError, match="duration") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("ms", "text"), [(0, "0"), (250, "250ms"), (5_400_000, "1h30m"), (-5_000, "-5s")]
)
def test_formats(ms: int, text: str) -> None:
    assert format_duration(ms) == text


@pytest.mark.parametrize("text", ["30", "1500", "-5", "+7"])
def test_a_bare_number_is_refused_with_a_hint_to_give_the_unit(text: str) -> None:
    with pytest.raises(ConfigError, match=r"bare number has no unit; write \d+s, \d+m or \d+ms"):
        parse_duration(text)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_round_trip(ms: int) -> None:
    assert parse_duration(format_duration(ms)) == ms
