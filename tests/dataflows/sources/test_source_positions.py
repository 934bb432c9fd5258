"""A file partition's resume state keeps its recovery format.

Bytewax pickles a source partition's snapshot, naming the class by module, so
the module path of :class:`~dataflows.sources.FilePosition` is part of the
recovery format: stores written before the sources became a package must still
resume, and new ones must still be read by them.
"""

from __future__ import annotations

import pickle

from dataflows.sources import FilePosition

#: ``pickle.dumps(FilePosition(123, 1700000000000, 5, 1))`` as written by the
#: flat ``dataflows/sources.py`` of commit 0c205c4.
BEFORE_ROOMS = bytes.fromhex(
    "8004953c000000000000008c1164617461666c6f77732e736f7572636573948c0c46696c65506f73"
    "6974696f6e9493942981945d94284b7b8a060068e5cf8b014b054b0165622e"
)


def test_a_snapshot_from_before_the_rooms_still_loads() -> None:
    assert pickle.loads(BEFORE_ROOMS) == FilePosition(123, 1_700_000_000_000, 5, 1)  # noqa: S301


def test_snapshots_are_pickled_as_before() -> None:
    assert pickle.dumps(FilePosition(123, 1_700_000_000_000, 5, 1)) == BEFORE_ROOMS
