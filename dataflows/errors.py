"""Errors of the ``dataflows`` package (config, inputs, validation).

All derive from :class:`joins.errors.StreamJoinError`, the project's one base
class. Messages carry the offending value and what would have been allowed.
Bad *records* are not errors: they become :class:`dataflows.inputs.Invalid`
dead letters. These classes are for whole inputs, flags and runs.
"""

from __future__ import annotations

import signal

from joins.errors import StreamJoinError


class ConfigError(StreamJoinError, ValueError):
    """A flag or config value is malformed or out of range (the message says
    the value given and what is allowed)."""


class InputError(StreamJoinError, OSError):
    """An input path cannot be read at all (missing, a directory, unreadable,
    or a CSV header that lacks a configured field)."""


class ValidationError(StreamJoinError):
    """A run directory cannot be validated (missing ``run.json``, unreadable
    output file); a run that merely disagrees with the contract is reported by
    :func:`dataflows.validate.validate`, not raised."""


class RunError(StreamJoinError):
    """A run could not complete: a worker process failed (its own error is
    printed above the message) or the run's outputs cannot be summarised."""


class Stopped(StreamJoinError):
    """A run was stopped by a signal (SIGTERM, SIGINT, SIGHUP) and every process
    of it has exited; the command exits with :attr:`exit_code` (128 + signal)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name}: every process of the run has "
            "exited (with --recovery-dir, run the same command again to resume)"
        )
