"""One log format for every process, the level's sources, the terminal shared by
log lines and the live line, and the parent's relay of a worker's output."""

from __future__ import annotations

import io
import logging
import os
import re
import threading

import pytest

from dataflows.console import LineFormatter, Terminal, log_level, relay_output, setup_logging
from dataflows.console.logs import LINE_PATTERN, TerminalHandler, teardown_logging
from dataflows.errors import ConfigError

PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\w+) +\[(\d+) (\w+)\] ")


def _record(msg: str, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("streamjoin.test", level, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def test_every_line_carries_the_time_level_pid_and_role() -> None:
    text = LineFormatter("p3").format(_record("first\nsecond", logging.WARNING))
    lines = text.split("\n")
    assert len(lines) == 2
    for line, body in zip(lines, ["first", "second"], strict=True):
        found = PREFIX.match(line)
        assert found is not None, line
        assert found.groups() == ("WARNING", str(os.getpid()), "p3")
        assert line[found.end():] == body
        assert LINE_PATTERN.match(line)


def test_a_record_may_speak_for_another_process() -> None:
    text = LineFormatter("main").format(_record("raw", sj_pid=4242, sj_role="p1"))
    found = PREFIX.match(text)
    assert found is not None
    assert found.groups() == ("INFO", "4242", "p1")


def test_a_traceback_gets_the_prefix_on_each_line() -> None:
    try:
        msg = "boom"
        raise ValueError(msg)
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    lines = LineFormatter("main").format(record).split("\n")
    assert len(lines) > 3
    assert all(PREFIX.match(line) for line in lines)
    assert lines[-1].endswith("ValueError: boom")


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, {}, logging.INFO),
        (None, {"STREAMJOIN_LOG_LEVEL": "debug"}, logging.DEBUG),
        (None, {"STREAMJOIN_LOG_LEVEL": "WARNING"}, logging.WARNING),
        ("error", {"STREAMJOIN_LOG_LEVEL": "debug"}, logging.ERROR),  # the flag wins
        (None, {"STREAMJOIN_LOG_LEVEL": ""}, logging.INFO),  # empty: unset
    ],
)
def test_the_level_comes_from_the_flag_then_the_environment(
    flag: str | None, env: dict[str, str], expected: int
) -> None:
    assert log_level(flag, env) == expected


def test_a_bad_level_names_where_it_came_from() -> None:
    with pytest.raises(ConfigError, match="STREAMJOIN_LOG_LEVEL must be one of debug, info, "
                       "warning, error, got 'loud'"):
        log_level(None, {"STREAMJOIN_LOG_LEVEL": "loud"})
    with pytest.raises(ConfigError, match="--log-level must be one of"):
        log_level("verbose", {})


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_line_goes_above_the_live_line_which_is_drawn_again() -> None:
    out = _Tty()
    term = Terminal(lambda: out)
    assert term.is_terminal()
    term.show("read 10%")
    term.write_lines("a log line")
    term.show("read 20%")
    term.clear()
    assert out.getvalue() == (
        "\rread 10%\x1b[K"  # drawn
        "\r\x1b[Ka log line\nread 10%"  # erased, the log line, drawn again
        "\rread 20%\x1b[K"  # redrawn in place
        "\r\x1b[K"  # erased at the end
    )
    assert not Terminal(io.StringIO).is_terminal()


def test_the_projects_records_go_through_the_terminal_at_the_level() -> None:
    out = io.StringIO()
    handler = setup_logging(logging.WARNING, "main", Terminal(lambda: out))
    try:
        logging.getLogger("streamjoin.test").info("hidden")
        logging.getLogger("streamjoin.test").warning("shown")
        logging.getLogger("dataflows.some.module").warning("module loggers too")
    finally:
        teardown_logging(handler)
    lines = out.getvalue().splitlines()
    assert [PREFIX.sub("", line) for line in lines] == ["shown", "module loggers too"]
    assert not any(isinstance(h, TerminalHandler) for h in logging.getLogger().handlers)


def _relay(data: bytes, level: int, failed: bool = False) -> list[str]:
    out = io.StringIO()
    term = Terminal(lambda: out)
    handler = setup_logging(level, "main", term)
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    flag = threading.Event()
    if failed:
        flag.set()
    try:
        relay_output(os.fdopen(read_fd, "rb"), 777, "p2", flag, term)
    finally:
        teardown_logging(handler)
    return out.getvalue().splitlines()


WORKER_LINE = "2026-11-30T14:05:01.123Z INFO    [777 p2] process 2 serves metrics at http://x"
RETRY = "worker 2:\terror connecting to worker 0: Connection refused (os error 111); retrying"


def test_a_workers_own_log_lines_pass_as_they_are() -> None:
    assert _relay(f"{WORKER_LINE}\n".encode(), logging.INFO) == [WORKER_LINE]


def test_bytewaxs_connection_retries_are_debug() -> None:
    assert _relay(f"{RETRY}\n".encode(), logging.INFO) == []
    shown = _relay(f"{RETRY}\n".encode(), logging.DEBUG)
    assert len(shown) == 1
    found = PREFIX.match(shown[0])
    assert found is not None
    assert found.groups() == ("DEBUG", "777", "p2")
    assert shown[0].endswith(RETRY)


def test_other_raw_output_is_a_warning_until_the_run_failed() -> None:
    raw = b"thread 'timely:work-0' panicked at src/lib.rs:1\n\n"
    shown = _relay(raw, logging.INFO)
    assert len(shown) == 1
    assert PREFIX.match(shown[0]).groups() == ("WARNING", "777", "p2")  # type: ignore[union-attr]
    assert shown[0].endswith("panicked at src/lib.rs:1")
    # Once a failure is known, the others' dying words are noise: debug.
    assert _relay(raw, logging.INFO, failed=True) == []
