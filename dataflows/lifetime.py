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

:class:`WorkerProcesses` starts the workers with their stdout and stderr piped
into the parent, which relays them through its log
(:func:`dataflows.console.relay_output`), and with a pipe on which each
worker reports its first failure (:mod:`dataflows.console.failures`). When a
worker fails, the parent waits a moment for the others' reports and names the
process and the cause of the first anticipated failure in one line.
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
from dataclasses import dataclass, field
from types import FrameType
from typing import IO

from dataflows.console import Failure, logger, read_reports, relay_output
from dataflows.errors import RunError, Stopped

#: The signals after which a run stops all its processes and exits 128 + signal.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: How long stopped workers get to exit after SIGTERM before SIGKILL.
GRACE_S = 5.0
#: How often a worker's watchdog looks at its parent.
WATCH_INTERVAL_S = 0.5
#: After a worker fails, how long the parent waits for the other workers'
#: reports before it stops them (the first failure may surface in another
#: process than the one that saw its cause).
FAILURE_GRACE_S = 2.0
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


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    reports: list[tuple[float, Failure]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)


class WorkerProcesses:
    """The worker processes of a run, their output relayed through the parent's
    log and their failure reports collected (see the module docstring).

    ``debug`` (``--debug``) logs the traceback of the failure it reports.
    """

    def __init__(self, *, debug: bool = False) -> None:
        self.debug = debug
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        #: Set at the first sign of failure: the other workers' raw output is
        #: then the noise of a broken cluster (logged at debug).
        self.failed = threading.Event()

    @property
    def procs(self) -> list[subprocess.Popen[bytes]]:
        return [w.proc for w in self._workers]

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start worker ``len(self.procs)`` as ``argv`` + ``--report-fd N``."""
        index = len(self._workers)
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
                [*argv, "--report-fd", str(write_fd)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                env=env,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the worker holds its own copy
        worker = _Worker(index, proc)
        self._workers.append(worker)
        role = f"p{index}"
        output: IO[bytes] = proc.stdout  # type: ignore[assignment]  # stdout=PIPE
        relay = threading.Thread(
            target=relay_output,
            args=(output, proc.pid, role, self.failed),
            name=f"relay-{role}",
            daemon=True,
        )
        reports = threading.Thread(
            target=self._collect,
            args=(worker, os.fdopen(read_fd, "rb")),
            name=f"reports-{role}",
            daemon=True,
        )
        worker.threads.extend((relay, reports))
        relay.start()
        reports.start()

    def _collect(self, worker: _Worker, pipe: IO[bytes]) -> None:
        for failure in read_reports(pipe):
            with self._lock:
                worker.reports.append((time.monotonic(), failure))
            self.failed.set()

    def wait(self, stop: SignalStop) -> None:
        """Wait for every worker to exit, or for a stop signal. If one fails
        (exits non-zero or reports a failure), the cluster is gone: raise
        :class:`~dataflows.errors.RunError` naming the process and the cause
        (the caller stops the others)."""
        pending = list(self._workers)
        while pending and stop.signum is None:
            for worker in list(pending):
                code = worker.proc.poll()
                if code is None:
                    continue
                pending.remove(worker)
                if code != 0:
                    self.failed.set()
            if self.failed.is_set():
                raise RunError(self._failure_message())
            time.sleep(0.05)

    def _failure_message(self) -> str:
        """Which process failed and why, once the others had a moment to report."""
        deadline = time.monotonic() + FAILURE_GRACE_S
        while time.monotonic() < deadline and not self._anticipated():
            if all(w.proc.poll() is not None for w in self._workers):
                for worker in self._workers:  # their last reports are in the pipes
                    for thread in worker.threads[1:]:
                        thread.join(timeout=max(0.0, deadline - time.monotonic()))
                break
            time.sleep(0.05)
        chosen = self._anticipated() or self._first_report()
        if chosen is None:
            failed = [w for w in self._workers if w.proc.poll() not in (None, 0)]
            if not failed:
                return "a worker process failed"
            worker = failed[0]
            return f"process {worker.index} (pid {worker.proc.pid}) {exit_reason(worker.proc)}"
        worker, failure = chosen
        log = logger("run")
        where = f"process {worker.index} (pid {worker.proc.pid})"
        extra = {"sj_pid": worker.proc.pid, "sj_role": f"p{worker.index}"}
        if not failure.anticipated:
            log.error("%s", failure.traceback.rstrip(), extra=extra)
            return f"{where}: {failure.message} (a bug: its traceback is above; please report it)"
        if self.debug and failure.traceback:
            log.error("%s", failure.traceback.rstrip(), extra=extra)
        return f"{where}: {failure.message}"

    def _reports(self) -> list[tuple[float, _Worker, Failure]]:
        with self._lock:
            found = [(at, w, f) for w in self._workers for at, f in w.reports]
        return sorted(found, key=lambda item: item[0])

    def _anticipated(self) -> tuple[_Worker, Failure] | None:
        for _at, worker, failure in self._reports():
            if failure.anticipated:
                return worker, failure
        return None

    def _first_report(self) -> tuple[_Worker, Failure] | None:
        found = self._reports()
        return (found[0][1], found[0][2]) if found else None

    def stop(self, grace_s: float = GRACE_S) -> None:
        """Stop every worker still running (:func:`stop_processes`) and let the
        relays finish passing on what they wrote."""
        stop_processes(self.procs, grace_s)
        for worker in self._workers:
            for thread in worker.threads:
                thread.join(timeout=5)


def exit_reason(proc: subprocess.Popen[bytes]) -> str:
    """How a process ended, in words (``was killed by SIGKILL``)."""
    code = proc.returncode
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory? see dmesg)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"
