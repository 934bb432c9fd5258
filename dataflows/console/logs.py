"""Logging for every process of a command: one format, the process in every line.

A line reads ``2026-11-30T14:05:01.123Z INFO    [4242 main] message``: the
UTC time, the level, the process id and the process's role (``main``: the
command's own process; ``p0``, ``p1``, ...: the worker processes of a run, by
index). A message of several lines (a traceback) carries the prefix on each
line, so that every line says where it comes from, also when the lines of
several processes interleave.

The level is ``--log-level`` (``debug``, ``info``, ``warning``, ``error``),
else ``STREAMJOIN_LOG_LEVEL``, else ``info`` (:func:`log_level`). The
project's loggers are named ``streamjoin.*`` (and ``dataflows.*`` by module);
the handler sits on the root logger so that other libraries' warnings come out
in the same format. Everything goes through :data:`~dataflows.console.terminal.TERMINAL`,
which keeps log lines and the live progress line apart.

Workers log to their stderr in this format at the run's level; the parent reads
their stdout and stderr (:func:`relay_output`) and passes formatted lines on as
they are. Anything else a worker prints (Bytewax's engine writes to stdout from
Rust) is logged by the parent for that worker: Bytewax's harmless "error
connecting to worker N ...; retrying" (a peer process not listening yet; it
retries every second) at ``debug``, other lines at ``warning`` (``debug`` once
the run is known to have failed: the other processes then die noisily of the
broken cluster, and the failure itself is reported on its own).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from dataflows.console.terminal import TERMINAL, Terminal
from dataflows.errors import ConfigError

#: The project's logger namespace.
LOGGER = "streamjoin"
#: ``--log-level`` choices, by name.
LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
DEFAULT_LEVEL = "info"
LOG_LEVEL_ENV = "STREAMJOIN_LOG_LEVEL"
#: The role of the command's own process in log lines.
MAIN_ROLE = "main"

#: A line in this module's format (what a worker's own log records look like).
LINE_PATTERN = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) +"
    r"\[\d+ [a-z0-9]+\] "
)
#: What timely (Bytewax's engine) prints while a peer process is not listening yet.
BYTEWAX_RETRY = re.compile(r"^worker \d+:\s+error connecting to worker \d+: .*; retrying\s*$")


@dataclass(frozen=True)
class ConsoleOptions:
    """What the operator asked to see: the log ``level`` (``--log-level``),
    tracebacks of anticipated failures (``--debug``) and the progress
    (``--quiet`` turns it off)."""

    level: int = logging.INFO
    debug: bool = False
    progress: bool = True

    @classmethod
    def of(cls, args: object, environ: Mapping[str, str] | None = None) -> ConsoleOptions:
        """From parsed flags (``log_level``, ``debug``, ``quiet``; absent ones
        take their defaults) and ``STREAMJOIN_LOG_LEVEL``."""
        return cls(
            level=log_level(getattr(args, "log_level", None), environ),
            debug=bool(getattr(args, "debug", False)),
            progress=not getattr(args, "quiet", False),
        )


def logger(name: str) -> logging.Logger:
    """The project's logger ``streamjoin.<name>``."""
    return logging.getLogger(f"{LOGGER}.{name}")


def log_level(flag: str | None, environ: Mapping[str, str] | None = None) -> int:
    """The level from ``--log-level`` (``flag``), else ``STREAMJOIN_LOG_LEVEL``,
    else ``info``; a bad value is a :class:`~dataflows.errors.ConfigError`."""
    env = os.environ if environ is None else environ
    given, source = flag, "--log-level"
    if not given:
        given, source = env.get(LOG_LEVEL_ENV) or None, LOG_LEVEL_ENV
    if not given:
        return LEVELS[DEFAULT_LEVEL]
    level = LEVELS.get(given.strip().lower())
    if level is None:
        msg = f"{source} must be one of {', '.join(LEVELS)}, got {given!r}"
        raise ConfigError(msg)
    return level


def level_name(level: int) -> str:
    """``--log-level``'s word for ``level``."""
    return next((name for name, value in LEVELS.items() if value == level), DEFAULT_LEVEL)


class LineFormatter(logging.Formatter):
    """This module's format; ``role`` names the process (``main``, ``p0``, ...).

    A record may say it comes from another process (``extra={"sj_pid": ...,
    "sj_role": ...}``): the parent logs a worker's raw output that way.
    """

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        pid = getattr(record, "sj_pid", record.process)
        role = getattr(record, "sj_role", self.role)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        millis = int(record.msecs)
        prefix = f"{stamp}.{millis:03d}Z {record.levelname:<7} [{pid} {role}] "
        return "\n".join(prefix + line for line in (text.splitlines() or [""]))


class TerminalHandler(logging.Handler):
    """Writes formatted records through a :class:`Terminal` (above its live line)."""

    def __init__(self, terminal: Terminal, role: str) -> None:
        super().__init__()
        self.terminal = terminal
        self.setFormatter(LineFormatter(role))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.terminal.write_lines(self.format(record))
        except Exception:  # logging must never take the process down
            self.handleError(record)


def setup_logging(
    level: int, role: str = MAIN_ROLE, terminal: Terminal = TERMINAL
) -> TerminalHandler:
    """Send every log record at ``level`` or above of the project (and warnings
    of other libraries) to ``terminal`` in this module's format; replaces a
    handler installed before."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, TerminalHandler)]:
        root.removeHandler(old)
    handler = TerminalHandler(terminal, role)
    root.addHandler(handler)
    for name in (LOGGER, "dataflows"):
        logging.getLogger(name).setLevel(level)
    return handler


def teardown_logging(handler: TerminalHandler) -> None:
    """Remove a handler :func:`setup_logging` installed."""
    logging.getLogger().removeHandler(handler)


@contextmanager
def logging_to_terminal(level: int, role: str = MAIN_ROLE) -> Iterator[TerminalHandler]:
    """:func:`setup_logging` for the duration (a command calls it around its work)."""
    handler = setup_logging(level, role)
    try:
        yield handler
    finally:
        teardown_logging(handler)


def relay_output(
    pipe: IO[bytes],
    pid: int,
    role: str,
    failed: threading.Event,
    terminal: Terminal = TERMINAL,
) -> None:
    """Pass a worker's output (its stdout and stderr, merged) on until it ends
    (see the module docstring); ``failed`` lowers unformatted lines to debug."""
    log = logger("worker")
    extra = {"sj_pid": pid, "sj_role": role}
    for raw in iter(pipe.readline, b""):
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not text.strip():
            continue
        if LINE_PATTERN.match(text):
            terminal.write_lines(text)  # the worker applied the level already
        elif BYTEWAX_RETRY.match(text) or failed.is_set():
            log.debug("%s", text, extra=extra)
        else:
            log.warning("%s", text, extra=extra)
    pipe.close()
