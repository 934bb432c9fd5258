"""Failures in one line: what went wrong and what to do, without a traceback.

:func:`describe` turns an exception into a :class:`Failure`: one line naming
the cause and the fix, and whether the failure was *anticipated*:

- a :class:`~joins.StreamJoinError` anywhere in the exception's chain (Bytewax
  wraps what a step raises): its message, which names the value and the fix;
- an ``OSError`` of the filesystem (full disk, read-only filesystem, no
  permission, too many open files, ...), also RocksDB's ``IO error: ...``
  texts: the path, the reason, the flag whose directory holds the path
  (``places``, e.g. ``{"--out": "/data/out"}``) and what to do about it;
- anything else is a bug: ``unexpected ValueError: ...``, and its traceback is
  shown.

The command prints the line and exits 1 (2 for usage errors); ``--debug``
shows the traceback of anticipated failures too.

**Workers.** An exception in a step of the dataflow reaches Bytewax's engine,
which stops the cluster; with several processes the others then panic on the
broken connections, and the original exception may never surface (measured:
both processes ended in ``PanicException: Send thread panic``). So the
project's callbacks that Bytewax calls (sources, sinks, the shard logic) are
wrapped in :func:`reports_failures`: the first exception is described *where
it is raised* and written at once, as one JSON line, to a pipe the parent
gave the worker (:func:`configure_reports`, ``--report-fd``); the parent reads
them (:func:`read_reports`) and reports which process failed and why.
"""

from __future__ import annotations

import errno
import functools
import getpass
import json
import os
import re
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import IO, ParamSpec, TypeVar

from joins import StreamJoinError

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Failure:
    """A failure as the operator sees it: one line, and whether it was anticipated
    (not a bug); ``traceback`` for ``--debug`` and for bugs."""

    message: str
    anticipated: bool
    traceback: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Failure:
        data = json.loads(text)
        return cls(str(data["message"]), bool(data["anticipated"]), str(data.get("traceback", "")))


#: errno -> (what it means, the fix; ``{flag}``: where to point instead).
_OS_CAUSES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free space there, or point {flag} at a disk "
                   "with room"),
    errno.EDQUOT: ("disk quota exceeded", "free space there, or point {flag} at a disk with room"),
    errno.EFBIG: ("file too large (the filesystem's limit, or ulimit -f)",
                  "raise the limit, or point {flag} at another filesystem"),
    errno.EROFS: ("read-only filesystem", "point {flag} at a writable filesystem"),
    errno.EACCES: ("permission denied", "point {flag} at a directory user {user} may write, "
                   "or change its permissions"),
    errno.EPERM: ("operation not permitted", "point {flag} at a directory user {user} may "
                  "write, or change its permissions"),
    errno.ENOTDIR: ("a part of the path is a file, not a directory",
                    "point {flag} at a directory"),
    errno.EISDIR: ("is a directory", "check {flag}"),
    errno.ENOENT: ("no such file or directory (removed while the run used it?)",
                   "check {flag} and run again"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n), or use fewer --shards"),
    errno.ENFILE: ("too many open files in the system", "close other programs' files, or use "
                   "fewer --shards"),
    errno.EIO: ("input/output error (a failing disk?)", "check the disk, or point {flag} "
                "elsewhere"),
}
#: RocksDB reports I/O errors as text: ``IO error: No space left on device: While ...: /path``.
_ROCKS_IO = re.compile(r"IO error: (?P<reason>[^:]+)(?::.*?(?P<path>/[^:\s]*))?")
_STRERRORS = {os.strerror(code): code for code in _OS_CAUSES}


_DISK_FULL_OR_READ_ONLY = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it, outermost first (each once)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__suppress_context__:
            current = None
        else:
            current = current.__context__


def _os_error(exc: BaseException) -> OSError | None:
    """``exc`` as an ``OSError`` with a known errno (RocksDB's text included)."""
    if isinstance(exc, OSError) and exc.errno in _OS_CAUSES:
        return exc
    found = _ROCKS_IO.search(str(exc)) if not isinstance(exc, OSError) else None
    if found is not None and found.group("reason") in _STRERRORS:
        code = _STRERRORS[found.group("reason")]
        return OSError(code, os.strerror(code), found.group("path"))
    return None


def place_of(path: str, places: Mapping[str, str]) -> tuple[str, str] | None:
    """The flag (and its directory) whose directory holds ``path``: the most
    specific one (``--state-dir`` inside ``--out`` wins for the state's files)."""
    best: tuple[str, str] | None = None
    full = os.path.abspath(path)
    for flag, directory in places.items():
        if not directory:
            continue
        root = os.path.abspath(directory)
        if (full == root or full.startswith(root.rstrip(os.sep) + os.sep)) and (
            best is None or len(root) > len(best[1])
        ):
            best = (flag, root)
    return best


def describe_os_error(exc: OSError, places: Mapping[str, str] | None = None) -> str:
    """One line for a filesystem error: path, reason, flag, fix."""
    what, fix = _OS_CAUSES.get(exc.errno or 0, (exc.strerror or str(exc), "check {flag}"))
    path = str(exc.filename) if exc.filename is not None else ""
    place = place_of(path, places or {}) if path else None
    if place is None:
        flag = "the path"
        where = ""
    else:
        flag = place[0]
        where = "" if os.path.abspath(path) == place[1] else f" (in {place[0]} {place[1]})"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    subject = f"{path}{where}: " if path else ""
    return f"{subject}{what}: {fix.format(flag=flag, user=user)}"


def describe(exc: BaseException, places: Mapping[str, str] | None = None) -> Failure:
    """The one-line :class:`Failure` of ``exc`` (see the module docstring)."""
    chain = list(_chain(exc))
    tb = "".join(traceback.format_exception(exc))
    for link in chain:
        # A full or read-only disk is the cause whatever wrapped it (RocksDB's
        # "cannot open state" included): name the disk, the flag and the fix.
        found = _os_error(link)
        if found is not None and found.errno in _DISK_FULL_OR_READ_ONLY:
            return Failure(describe_os_error(found, places), True, tb)
    for link in chain:
        if isinstance(link, StreamJoinError):
            return Failure(str(link), True, tb)
    for link in chain:
        found = _os_error(link)
        if found is not None:
            return Failure(describe_os_error(found, places), True, tb)
    root = chain[-1]
    text = " ".join(str(root).split()) or "(no message)"
    return Failure(f"unexpected {type(root).__name__}: {text}", False, tb)


# -- workers: report the first failure to the parent -----------------------------------

_NOT_FAILURES = (StopIteration, StopAsyncIteration, GeneratorExit, KeyboardInterrupt, SystemExit)


class _Reports:
    def __init__(self, fd: int, places: Mapping[str, str]) -> None:
        self.fd = fd
        self.places = dict(places)
        self.lock = threading.Lock()
        self.seen: set[int] = set()


_reports: _Reports | None = None


def configure_reports(fd: int, places: Mapping[str, str]) -> None:
    """In a worker: write failures to ``fd`` (a pipe to the parent), describing
    paths by ``places`` (flag -> directory)."""
    global _reports
    _reports = _Reports(fd, places)


def report_failure(exc: BaseException) -> Failure | None:
    """Describe ``exc`` and send it to the parent (once per exception; nothing
    when no parent listens). Returns the description."""
    reports = _reports
    if reports is None or isinstance(exc, _NOT_FAILURES):
        return None
    failure = describe(exc, reports.places)
    with reports.lock:
        if id(exc) in reports.seen:
            return failure
        reports.seen.add(id(exc))
        data = (failure.to_json() + "\n").encode()
        try:
            while data:
                data = data[os.write(reports.fd, data) :]
        except OSError:
            pass  # the parent is gone: it can hear nothing any more
    return failure


def reports_failures(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a callback Bytewax calls, so that an exception it raises is
    reported to the parent where it happens (then raised on)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            report_failure(exc)
            raise

    return wrapper


def read_reports(pipe: IO[bytes]) -> Iterator[Failure]:
    """The failures a worker reports, as they come (until it exits)."""
    for line in iter(pipe.readline, b""):
        try:
            yield Failure.from_json(line.decode("utf-8", "replace"))
        except (ValueError, KeyError):
            continue
    pipe.close()
