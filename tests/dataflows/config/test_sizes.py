"""Sizes: the flag grammar, its errors, and the round trip through format_size."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataflows.config import GIB, KIB, MIB, TIB, format_size, parse_size
from dataflows.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256MiB", 256 * MIB),
        ("1GiB", GIB),
        ("512M", 512 * MIB),
        ("512m", 512 * MIB),
        ("64mib", 64 * MIB),
        ("2T", 2 * TIB),
        ("3KiB", 3 * KIB),
        ("7k", 7 * KIB),
        ("100B", 100),
        ("268435456", 256 * MIB),
        ("0", 0),
        (" 1G ", GIB),
        ("256 MiB", 256 * MIB),
        (4096, 4096),
    ],
)
def test_parses(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text",
    ["", "MiB", "1.5GiB", "-1G", "+1G", "1 G B", "256  MiB", "12PiB", "1Gi", "1x", "\u0661M", True],
)
def test_rejects_with_the_value_and_what_is_allowed(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid size") as info:
        parse_size(text)
    assert repr(text) in str(info.value)
    assert "256MiB" in str(info.value)  # what is allowed


@pytest.mark.parametrize(
    ("text", "binary"), [("512MB", "512MiB"), ("1gb", "1GiB"), ("10KB", "10KiB"), ("2TB", "2TiB")]
)
def test_decimal_looking_units_are_refused_with_the_binary_spelling(text: str, binary: str) -> None:
    with pytest.raises(ConfigError, match="ambiguous") as info:
        parse_size(text)
    assert f"write {binary}" in str(info.value)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0"),
        (1000, "1000"),
        (256 * MIB, "256MiB"),
        (GIB, "1GiB"),
        (1536 * KIB, "1536KiB"),
        (3 * TIB, "3TiB"),
    ],
)
def test_formats(size: int, text: str) -> None:
    assert format_size(size) == text


@given(st.integers(min_value=0, max_value=2**60))
def test_round_trip(size: int) -> None:
    assert parse_size(format_size(size)) == size
