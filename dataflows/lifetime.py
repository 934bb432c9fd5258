"""The processes of a run live and die together: signals in the parent, and
workers that never outlive it.

``streamjoin run`` is one parent process and ``--processes`` worker processes
(:mod:`dataflows.run`). A supervisor (systemd, ``docker stop``, ``kubectl
delete``) or a user at a terminal stops the *parent*; whatever the workers do
then, they must stop too, or they keep writing into ``OUT`` and holding the
recovery directory's run lock.

- Parent: :class:`SignalStop` records SIGTERM, SIGINT and SIGHUP instead of
  dying on them, so :func:`dataflows.run.run` can stop every worker
  (:func:`stop_processes`: SIGTERM, then SIGKILL after a grace period), run
  its quiescent clean-up and exit with ``128 + signal`` (143 for SIGTERM, 130
  for SIGINT). The handler only records: the run acts on it at points where
  no worker is half started (see :meth:`SignalStop.check`).
- Workers: :func:`die_with_parent` asks Linux to SIGKILL the worker when its
  parent dies (``prctl(PR_SET_PDEATHSIG)``), and starts a watchdog thread that
  does the same when ``os.getppid()`` changes (other systems, or a parent that
  died before the ``prctl``). A parent killed with SIGKILL therefore leaves no
  worker behind. Killing a worker is safe: a run resumes from its last
  snapshot (``--recovery-dir``), and without recovery the run has failed
  anyway. Workers ignore SIGINT (a Ctrl-C reaches the whole foreground process
  group): the parent decides, and stops them with SIGTERM.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from dataflows.errors import Stopped

#: The signals after which a run stops all its processes and exits 128 + signal.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: How long stopped workers get to exit after SIGTERM before SIGKILL.
GRACE_S = 5.0
#: How often a worker's watchdog looks at its parent.
WATCH_INTERVAL_S = 0.5
_PR_SET_PDEATHSIG = 1


class SignalStop:
    """Records the stop signals the parent receives while it is installed.

    The handler never raises (an exception between two ``Popen`` calls could
    leave a started worker unknown to the parent); the parent asks
    :meth:`check` at its safe points and :attr:`signum` in its wait loop.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum

    def check(self) -> None:
        """Raise :class:`Stopped` if a stop signal arrived."""
        if self.signum is not None:
            raise Stopped(self.signum)


@contextmanager
def stop_signals() -> Iterator[SignalStop]:
    """Record :data:`STOP_SIGNALS` for the duration (main thread only; elsewhere,
    e.g. a test calling ``run`` from a thread, signals keep their handlers)."""
    stop = SignalStop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, stop._handle) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_processes(procs: Sequence[subprocess.Popen[bytes]], grace_s: float = GRACE_S) -> None:
    """SIGTERM every process still running, SIGKILL those still running after
    ``grace_s``, and reap them all."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process exit when ``parent_pid`` is no longer its parent.

    Call it first thing in a worker. Also makes the worker ignore SIGINT (see
    the module docstring).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal()
    # The parent may have died before the prctl: then we already have another
    # parent, and no death signal will ever come.
    if os.getppid() != parent_pid:
        os._exit(1)
    watchdog = threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True
    )
    watchdog.start()


def _set_parent_death_signal() -> bool:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        done = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return False
    return bool(done == 0)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_INTERVAL_S)
    os.kill(os.getpid(), signal.SIGKILL)
