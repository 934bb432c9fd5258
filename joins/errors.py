"""Errors of the join core, and the project's one base class.

Every package of streamjoin raises subclasses of :class:`StreamJoinError`, so a
caller can catch the project's errors without catching programming bugs.
"""

from __future__ import annotations


class StreamJoinError(Exception):
    """Base class of every error this project raises on purpose."""


class JoinSpecError(StreamJoinError, ValueError):
    """A join parameter is out of range or inconsistent with another."""


class EventError(StreamJoinError, ValueError):
    """An event handed to the join core is malformed (a programming error upstream:
    sources route bad input to the invalid output before it reaches the core)."""
