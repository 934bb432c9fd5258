"""Failures in one line: the cause and the fix; workers report theirs on a pipe."""

from __future__ import annotations

import errno
import os

import pytest

from dataflows.console import (
    Failure,
    configure_reports,
    describe,
    read_reports,
    reports_failures,
)
from dataflows.console import failures as failures_module
from dataflows.errors import InputError

PLACES = {"--out": "/data/out", "--state-dir": "/data/out/state", "--recovery-dir": ""}


def _wrapped(inner: BaseException) -> RuntimeError:
    """As Bytewax raises it: its own error, caused by what the step raised."""
    try:
        try:
            raise inner
        except BaseException as exc:
            msg = "error calling `StatefulSourcePartition.next_batch`"
            raise RuntimeError(msg) from exc
    except RuntimeError as outer:
        return outer


def test_a_projects_error_inside_the_engines_is_its_own_message() -> None:
    found = describe(_wrapped(InputError("csv header of 'a.csv' has no column 'ts'")))
    assert found.anticipated
    assert found.message == "csv header of 'a.csv' has no column 'ts'"
    assert "Traceback" in found.traceback


@pytest.mark.parametrize(
    ("code", "path", "expected"),
    [
        (errno.ENOSPC, "/data/out/joined/s0001-3.jsonl",
         "/data/out/joined/s0001-3.jsonl (in --out /data/out): no space left on the device: "
         "free space there, or point --out at a disk with room"),
        (errno.EROFS, "/data/out/state/s0001-3/LOG",
         "/data/out/state/s0001-3/LOG (in --state-dir /data/out/state): read-only filesystem: "
         "point --state-dir at a writable filesystem"),
        (errno.EACCES, "/data/out", "/data/out: permission denied: point --out at a directory "
         "user "),
        (errno.EMFILE, "/elsewhere/x", "/elsewhere/x: too many open files: raise the limit "
         "(ulimit -n), or use fewer --shards"),
    ],
)
def test_a_filesystem_error_names_the_path_the_flag_and_the_fix(
    code: int, path: str, expected: str
) -> None:
    found = describe(_wrapped(OSError(code, os.strerror(code), path)), PLACES)
    assert found.anticipated
    assert found.message.startswith(expected), found.message


def test_rocksdbs_io_error_text_is_a_filesystem_error() -> None:
    text = ("IO error: No space left on device: While appending to file: "
            "/data/out/state/s0007-14/000009.sst: No space left on device")
    found = describe(_wrapped(Exception(text)), PLACES)
    assert found.anticipated
    assert found.message == (
        "/data/out/state/s0007-14/000009.sst (in --state-dir /data/out/state): no space left "
        "on the device: free space there, or point --state-dir at a disk with room"
    )


def test_anything_else_is_a_bug_with_its_traceback() -> None:
    found = describe(_wrapped(KeyError("shard")))
    assert not found.anticipated
    assert found.message == "unexpected KeyError: 'shard'"
    assert "KeyError" in found.traceback


def test_a_worker_reports_its_first_failure_where_it_is_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(failures_module, "_reports", None)
    read_fd, write_fd = os.pipe()
    configure_reports(write_fd, PLACES)
    calls = []

    @reports_failures
    def next_batch(n: int) -> int:
        calls.append(n)
        if n == 0:
            raise StopIteration  # the end of a partition: not a failure
        if n == 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out/late/s1.jsonl")
        return n

    assert next_batch(5) == 5
    with pytest.raises(StopIteration):
        next_batch(0)
    with pytest.raises(OSError, match="No space left"):
        next_batch(1)
    os.close(write_fd)
    reports = list(read_reports(os.fdopen(read_fd, "rb")))
    assert calls == [5, 0, 1]
    assert len(reports) == 1
    assert reports[0].anticipated
    assert reports[0].message.startswith("/data/out/late/s1.jsonl (in --out /data/out): no space")
    assert Failure.from_json(reports[0].to_json()) == reports[0]


def test_without_a_parent_nothing_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failures_module, "_reports", None)

    @reports_failures
    def step() -> None:
        msg = "x"
        raise ValueError(msg)

    with pytest.raises(ValueError, match="x"):
        step()
