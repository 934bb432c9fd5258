"""What an operator sees of a command: log lines, the live progress line, and
failures in one line.

- :mod:`~dataflows.console.logs`: one log format for every process of a run
  (the process id and role in each line), ``--log-level`` and
  ``STREAMJOIN_LOG_LEVEL``, and the parent's relay of its workers' output;
- :mod:`~dataflows.console.terminal`: stderr shared by log lines and the live
  progress line drawn in place on a terminal;
- :mod:`~dataflows.console.failures`: an exception as one line naming the
  cause and the fix, and the workers' report of their first failure to the
  parent.

No engine here: everything in this room is plain Python over the standard
library, used by the command, the run and the workers alike.
"""

from __future__ import annotations

from dataflows.console.failures import (
    Failure,
    configure_reports,
    describe,
    describe_os_error,
    place_of,
    read_reports,
    report_failure,
    reports_failures,
)
from dataflows.console.logs import (
    DEFAULT_LEVEL,
    LEVELS,
    LOG_LEVEL_ENV,
    MAIN_ROLE,
    ConsoleOptions,
    LineFormatter,
    level_name,
    log_level,
    logger,
    logging_to_terminal,
    relay_output,
    setup_logging,
)
from dataflows.console.terminal import TERMINAL, Terminal

__all__ = [
    "DEFAULT_LEVEL",
    "LEVELS",
    "LOG_LEVEL_ENV",
    "MAIN_ROLE",
    "TERMINAL",
    "ConsoleOptions",
    "Failure",
    "LineFormatter",
    "Terminal",
    "configure_reports",
    "describe",
    "describe_os_error",
    "level_name",
    "log_level",
    "logger",
    "logging_to_terminal",
    "place_of",
    "read_reports",
    "relay_output",
    "report_failure",
    "reports_failures",
    "setup_logging",
]
