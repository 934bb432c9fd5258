"""Running a join: worker processes, ``run.json`` and the summary.

:func:`run` prepares the output directory, starts ``processes`` cooperating
Bytewax processes on this machine (``python -m dataflows.run worker ...``, each
calling ``cluster_main`` with the addresses of all of them; the GIL serialises
threads, so a run scales with processes), waits for them, samples the process
tree's memory and the state's size on disk while they run, then sums the final
counters every shard and source left in ``OUT/.stats/`` into ``OUT/run.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import logging
import os
import random
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dataflows.config import RunConfig
from dataflows.console import (
    LEVELS,
    TERMINAL,
    ConsoleOptions,
    configure_reports,
    describe_os_error,
    level_name,
    logger,
    report_failure,
    setup_logging,
)
from dataflows.errors import RunError
from dataflows.hotpath import hot_path
from dataflows.lifetime import WorkerProcesses, die_with_parent, stop_signals
from dataflows.sinks import OUTPUT_KINDS, Executions, config_path
from dataflows.sinks import prepare_out_dir as prepare_out_dir  # moved there; re-exported
from joins import JoinCounters, StreamJoinError

RUN_JSON_VERSION = 1
_log = logger("run")


@dataclass(frozen=True)
class RunResult:
    """What a finished run reports (``run.json``'s content, as a value)."""

    out_dir: str
    summary: dict[str, Any]

    @property
    def counters(self) -> JoinCounters:
        return JoinCounters.from_dict(self.summary["counters"])


def free_ports(n: int) -> list[int]:
    """``n`` ports on 127.0.0.1 free now, for the workers to listen on.

    They are drawn below the kernel's ephemeral range: a port the kernel hands
    out (``bind`` to port 0, or the local end of any outgoing connection on the
    machine) could be taken again by someone else between this check and the
    worker's own ``bind``, which failed a run with "Address already in use"
    under load. Below that range only a program asking for that very port can
    take it."""
    low, _high = _ephemeral_range()
    floor = 10_000
    if low - floor < 1_000:  # an unusual range: fall back to the kernel's choice
        return _kernel_ports(n)
    rng = random.SystemRandom()
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randrange(floor, low)
        if port not in ports and _bindable(port):
            ports.append(port)
    return ports


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            low, high = (int(v) for v in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _kernel_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class _Sampler(threading.Thread):
    """Samples the RSS of the worker processes and the state's bytes on disk."""

    def __init__(
        self,
        pids: list[int],
        state_dir: str,
        interval_s: float = 0.25,
        tick: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self._pids = pids
        self._state_dir = state_dir
        self._interval_s = interval_s
        self._tick = tick
        self._halt = threading.Event()
        self.peak_rss_bytes = 0
        self.peak_state_bytes = 0
        #: The state's bytes on disk at the last sample.
        self.state_bytes = 0

    def run(self) -> None:
        while not self._halt.wait(self._interval_s):
            self.sample()
            if self._tick is not None:
                self._tick()

    def sample(self) -> None:
        rss = sum(_rss_bytes(pid) for pid in self._pids)
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        self.state_bytes = _dir_bytes(self._state_dir)
        self.peak_state_bytes = max(self.peak_state_bytes, self.state_bytes)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def _dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def places_of(cfg: RunConfig) -> dict[str, str]:
    """The directories a run writes, by the flag that sets each (for messages
    about their files)."""
    return {"--out": cfg.out_dir, "--state-dir": cfg.state_dir, "--recovery-dir": cfg.recovery_dir}


def warn_implausible_times(cfg: RunConfig) -> None:
    """Warn when sampled event times suggest a wrong ``--time-unit``."""
    from dataflows.inputs import SourceFormat, implausible_times

    for side in (cfg.left, cfg.right):
        fmt = SourceFormat(side.format, side.key_fields, side.time_field, side.time_unit)
        warning = implausible_times(side.side, side.paths, fmt)
        if warning is not None:
            _log.warning("%s", warning)


def _start_workers(cfg: RunConfig, workers: WorkerProcesses, console: ConsoleOptions) -> None:
    """Start the worker processes (each known to ``workers`` as soon as it runs,
    so that whoever stops the run knows every one of them)."""
    from dataflows.config.kafka_config import secrets_env

    config = config_path(cfg.out_dir)
    if cfg.processes == 1:
        addresses = ""
    else:
        addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(cfg.processes))
    # Workers write their log lines as they come: the parent relays them. Secret
    # Kafka settings reach the workers in their environment, never in a file.
    env = dict(os.environ, PYTHONUNBUFFERED="1", **secrets_env(cfg.kafka))
    for i in range(cfg.processes):
        argv = [
            sys.executable,
            "-m",
            "dataflows.run",
            "worker",
            config,
            "--process-id",
            str(i),
            "--addresses",
            addresses,
            "--parent-pid",
            str(os.getpid()),
            "--log-level",
            level_name(console.level),
        ]
        if console.debug:
            argv.append("--debug")
        workers.start(argv, env)


def run(
    cfg: RunConfig,
    *,
    echo: Callable[[str], None] = print,
    console: ConsoleOptions | None = None,
) -> RunResult:
    """Run the join of ``cfg`` to the end of its inputs and write ``run.json``.

    Raises :class:`~dataflows.errors.ConfigError` before touching ``OUT`` or
    starting a process if a ``--metrics-port`` port cannot be bound, and
    :class:`~dataflows.errors.RunError` naming the process and the cause when
    a worker fails, or the path, the flag and the fix when a directory of the
    run cannot be written. ``console`` says what to show while it runs.
    """
    try:
        return _run(cfg, echo, console or ConsoleOptions())
    except OSError as exc:
        if isinstance(exc, StreamJoinError):
            raise
        raise RunError(describe_os_error(exc, places_of(cfg))) from exc


def _run(cfg: RunConfig, echo: Callable[[str], None], console: ConsoleOptions) -> RunResult:
    from dataflows.metrics import ProgressWatch, check_metrics_ports
    from dataflows.recovering import begin
    from dataflows.sinks import (
        ExecutionRecord,
        input_verdict,
        prepare_kafka_outputs,
        read_executions,
    )
    from dataflows.sources import prepare_kafka_inputs

    check_metrics_ports(cfg)
    hot = hot_path()  # the summary and run.json say it; a pure or stale one is warned of now
    (_log.debug if hot.is_compiled else _log.warning)("hot path: %s", hot.describe())
    # Kafka (issue 11): topics exist, reader schemas and delivery settled once.
    cfg = prepare_kafka_inputs(cfg)
    cfg, note = prepare_kafka_outputs(cfg)
    if note:
        echo(note)
    # From here on a SIGTERM, SIGINT or SIGHUP stops every process of the run
    # (dataflows.lifetime): workers first, then the quiescent clean-up.
    with stop_signals() as stop:
        session = begin(cfg)  # recovery (#4): init, resume or fresh
        workers = WorkerProcesses(debug=console.debug)
        sampler = _Sampler([], cfg.state_dir)
        watch: ProgressWatch | None = None
        record: ExecutionRecord | None = None
        started = datetime.now(UTC)
        t0 = time.monotonic()
        try:
            if session.describe():
                echo(session.describe())
            stop.check()
            if session.needs_workers:
                record = ExecutionRecord(cfg.out_dir, session.mode)
                record.write()
                warn_implausible_times(cfg)
                _start_workers(cfg, workers, console)
            sampler = _Sampler(
                workers.pids, cfg.state_dir, tick=None if record is None else record.tick
            )
            sampler.start()
            if console.progress and session.needs_workers:
                watch = ProgressWatch(
                    cfg,
                    live=TERMINAL.is_terminal(),
                    state_bytes=lambda: sampler.state_bytes,
                    since=started.timestamp() - 1.0,
                )
                watch.start()
            try:
                workers.wait(stop)
            except RunError as exc:
                if not cfg.recovery_dir:
                    raise
                msg = f"{exc} (once fixed, the same command resumes from the last snapshot)"
                raise RunError(msg) from exc
        finally:
            if watch is not None:
                watch.stop()
            if sampler.is_alive():
                sampler.stop()
            workers.stop()
            session.end()
            if record is not None:  # also when stopped or failed: the time counts
                with contextlib.suppress(OSError):
                    record.write()
        stop.check()
    elapsed_s = time.monotonic() - t0
    if record is not None:
        record.write(_without_linger(elapsed_s, started, _metrics_endpoints(cfg)))
    summary = summarize(
        cfg,
        elapsed_s,
        started,
        sampler.peak_state_bytes,
        sampler.peak_rss_bytes,
        executions=read_executions(cfg.out_dir),
    )
    summary["hot_path"] = hot.to_json()
    if session.summary() is not None:
        summary["recovery"] = session.summary()
    with open(os.path.join(cfg.out_dir, "run.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    if cfg.state_dir == os.path.join(cfg.out_dir, "state"):
        # Everything was evicted at end of input; recovery (#4) will keep it.
        shutil.rmtree(cfg.state_dir, ignore_errors=True)
    echo(format_summary(summary))
    # After the outputs and the summary: what the counters say about the inputs.
    verdict = input_verdict(summary, cfg.max_invalid_fraction)
    for note in verdict.notes:
        _log.warning("%s", note)
    if verdict.failures:
        raise RunError("; ".join(verdict.failures))
    return RunResult(cfg.out_dir, summary)


def summarize(
    cfg: RunConfig,
    elapsed_s: float,
    started: datetime,
    peak_state_bytes: int,
    peak_rss_bytes: int,
    *,
    executions: Executions | None = None,
) -> dict[str, Any]:
    """``run.json``: the run's parameters and the sum of all final counters.

    ``elapsed_s`` is this execution's; with ``executions`` (a resumed run's,
    :mod:`dataflows.sinks.executions`) the throughput is the records of all of
    them over their active time, and their number and the resumes are given."""
    from dataflows.sinks import run_stats

    counters = JoinCounters()
    invalid = {"left": 0, "right": 0}
    read = {"left": 0, "right": 0}
    shard_peaks = 0
    shards_reported = 0
    kafka_partitions: dict[str, Any] = {}
    for item in run_stats(cfg):  # with recovery: the newest execution's, per shard/source
        if item.get("kind") == "shard":
            counters.add(JoinCounters.from_dict(item))
            shard_peaks += int(item.get("peak_state_bytes", 0))
            shards_reported += 1
        elif item.get("kind") == "source":
            invalid[item["side"]] += int(item["invalid"])
            read[item["side"]] += int(item["events"])
            if "kafka" in item:
                kafka_partitions[item["partition"]] = {"side": item["side"], **item["kafka"]}
    records_in = sum(read.values()) + sum(invalid.values())
    endpoints = _metrics_endpoints(cfg)
    elapsed_s = _without_linger(elapsed_s, started, endpoints)
    active_s = elapsed_s
    count, resumes = 1, 0
    if executions is not None and executions.count:
        active_s = max(executions.active_s, 0.001)
        count, resumes = executions.count, executions.resumes
    spec = cfg.spec
    return {
        "version": RUN_JSON_VERSION,
        "spec": {
            "lower_ms": spec.lower_ms,
            "upper_ms": spec.upper_ms,
            "how": spec.how,
            "max_out_of_orderness_ms": spec.max_out_of_orderness_ms,
            "allowed_lateness_ms": spec.allowed_lateness_ms,
            "idle_timeout_ms": spec.idle_timeout_ms,
        },
        "inputs": {"left": cfg.left.to_json(), "right": cfg.right.to_json()},
        "output_format": cfg.output_format,
        "counters": {**counters.to_dict(), "invalid": invalid},
        "events_read": read,
        "records_in": records_in,
        "processes": cfg.processes,
        "workers_per_process": cfg.workers_per_process,
        "shards": cfg.shards,
        "shards_reported": shards_reported,
        "state_dir": cfg.state_dir,
        "state_memory_bytes": cfg.state_memory_bytes,
        "started_at": started.isoformat(),
        "finished_at": (started + timedelta(seconds=elapsed_s)).isoformat(),
        "elapsed_s": round(elapsed_s, 3),
        "executions": count,
        "resumes": resumes,
        "active_s": round(active_s, 3),
        "events_per_s": round(records_in / active_s, 1) if active_s > 0 else 0.0,
        "peak_state_bytes": max(peak_state_bytes, shard_peaks),
        "peak_rss_bytes": peak_rss_bytes,
        "outputs": {k: _output(cfg, k) for k in OUTPUT_KINDS},
        "metrics": endpoints,
        **({"kafka": _kafka_summary(cfg, kafka_partitions)}
           if cfg.kafka_sides or cfg.kafka.outputs else {}),
    }


def _output(cfg: RunConfig, kind: str) -> str:
    url = cfg.kafka.output_url(kind)
    return os.path.join(cfg.out_dir, kind) if url is None else str(url)


def _kafka_summary(cfg: RunConfig, partitions: dict[str, Any]) -> dict[str, Any]:
    """``run.json``'s ``kafka`` block: the Kafka settings (secrets redacted), and
    per source partition its offsets and lag when it ended."""
    return {**cfg.kafka.to_json(), "partitions": dict(sorted(partitions.items()))}


def _metrics_endpoints(cfg: RunConfig) -> list[dict[str, Any]]:
    """Where each process served its metrics (``OUT/.run/metrics-<i>.json``)."""
    from dataflows.metrics import read_endpoints

    return read_endpoints(cfg.out_dir, cfg.processes)


def _without_linger(elapsed_s: float, started: datetime, endpoints: list[dict[str, Any]]) -> float:
    """The run's time up to the end of the last flow, without the time processes
    waited for the scrape of their final metrics (``--metrics-linger``)."""
    ends = [float(e["flow_finished_at"]) for e in endpoints if "flow_finished_at" in e]
    if not ends:
        return elapsed_s
    return max(0.001, min(elapsed_s, max(ends) - started.timestamp()))


def _over(s: dict[str, Any]) -> str:
    """How the throughput of a run of several executions was measured."""
    count = int(s.get("executions", 1))
    if count <= 1:
        return ""
    resumes = int(s.get("resumes", 0))
    return (
        f" over {s['active_s']:,.1f} s active in {count} executions "
        f"({resumes} resume{'' if resumes == 1 else 's'})"
    )


def format_summary(s: dict[str, Any]) -> str:
    """The human summary printed at the end of a run."""
    c = s["counters"]
    left, right = c["left"], c["right"]
    unmatched = left["unmatched_emitted"] + right["unmatched_emitted"]
    mib = 1024 * 1024
    rss_of = "all processes"
    if "state_memory_bytes" in s:  # absent from run.json files of earlier versions
        rss_of += f"; RocksDB budget {s['state_memory_bytes'] / mib:,.0f} MiB each"
    lines = [
        f"streamjoin: {s['spec']['how']} join finished in {s['elapsed_s']:.1f} s "
        f"({s['processes']} process(es) x {s['workers_per_process']} worker(s), "
        f"{s['shards']} shards)",
        f"  events in      left {left['events_in']:>10,}   right {right['events_in']:>10,}",
        f"  matched pairs  {c['pairs']:>10,}",
        f"  unmatched rows {unmatched:>10,}   (dropped on inner sides: "
        f"{left['unmatched_dropped'] + right['unmatched_dropped']:,})",
        f"  late           left {left['late']:>10,}   right {right['late']:>10,}",
        f"  duplicates     left {left['duplicates']:>10,}   right {right['duplicates']:>10,}",
        f"  invalid        left {c['invalid']['left']:>10,}   right {c['invalid']['right']:>10,}",
        f"  retained       left {left['retained']:>10,}   right {right['retained']:>10,}",
        f"  throughput     {s['events_per_s']:,.0f} events/s{_over(s)}",
        f"  peak state     {s['peak_state_bytes'] / mib:,.1f} MiB on disk;"
        f" peak RSS {s['peak_rss_bytes'] / mib:,.0f} MiB ({rss_of})",
        f"  outputs        {s['outputs']['joined']}/  late/  invalid/  and run.json",
    ]
    if "kafka" in s:
        lines[-1:] = _kafka_lines(s)
    hot = s.get("hot_path")
    if hot is not None:  # absent from run.json files of earlier versions
        how = "compiled (mypyc)" if hot["compiled"] else "STALE" if hot["stale"] else "pure Python"
        lines.append(f"  hot path       {how}, {hot['modules']} modules")
    endpoints = s.get("metrics") or []
    if endpoints:
        urls = "  ".join(e["url"] for e in endpoints)
        lines.append(f"  metrics        {urls}  (one per process, while it ran)")
    return "\n".join(lines)


def _kafka_lines(s: dict[str, Any]) -> list[str]:
    """The summary's Kafka lines: where the outputs went, and the lag per side."""
    kafka = s["kafka"]
    outputs = "  ".join(f"{k}: {v}" for k, v in s["outputs"].items())
    delivery = f"  (delivery {kafka['delivery']})" if kafka.get("outputs") else ""
    lines = [f"  outputs        {outputs}{delivery}"]
    parts = kafka.get("partitions", {})
    for side in ("left", "right"):
        mine = [p for p in parts.values() if p.get("side") == side]
        if mine:
            records = sum(int(p.get("lag_records", 0)) for p in mine)
            seconds = max(float(p.get("lag_seconds", 0.0)) for p in mine)
            errors = sum(sum(p.get("client_errors", {}).values()) for p in mine)
            lines.append(f"  kafka {side:5}    {len(mine)} partition(s), lag {records:,} "
                         f"record(s), at most {seconds:,.1f} s behind; {errors} client "
                         "error(s)")
    return lines


def worker_main(argv: list[str] | None = None) -> int:
    """One Bytewax process of a run (started by :func:`run`).

    Logs in the run's format at ``--log-level``; its first failure is reported
    to the parent on ``--report-fd`` (:mod:`dataflows.console.failures`), and
    logged here at debug level only (``--debug``: as an error, with its
    traceback), so that the parent's one line says it.
    """
    parser = argparse.ArgumentParser(prog="python -m dataflows.run worker")
    parser.add_argument("config")
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--addresses", default="")
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--log-level", choices=list(LEVELS), default="info")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--report-fd", type=int, default=-1)
    args = parser.parse_args(argv)
    if args.parent_pid:
        die_with_parent(args.parent_pid)
    setup_logging(LEVELS[args.log_level], role=f"p{args.process_id}")
    try:
        cfg = RunConfig.from_json(json.loads(Path(args.config).read_text(encoding="utf-8")))
        if args.report_fd >= 0:
            configure_reports(args.report_fd, places_of(cfg))
        _work(cfg, args.process_id, args.addresses)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # also pyo3's PanicException, a BaseException
        failure = report_failure(exc)
        # A reported failure is the parent's to show: it names the one that
        # counts (a step's error, not the other processes' panics on the
        # broken connections that follow it) and logs its traceback if it is
        # a bug. Logged here too, it raced the report and could put another
        # process's traceback under the one-line reason.
        level = logging.ERROR if args.debug or failure is None else logging.DEBUG
        _log.log(level, "failed: %s", failure.message if failure else exc, exc_info=exc)
        return 1
    return 0


def _work(cfg: RunConfig, process_id: int, addresses_arg: str) -> None:
    from bytewax.testing import cluster_main

    from dataflows.config.kafka_config import with_secrets
    from dataflows.flow import build_flow
    from dataflows.metrics import ProcessMetrics, StatusWriter
    from dataflows.recovering import worker_recovery

    cfg = dataclasses.replace(cfg, kafka=with_secrets(cfg.kafka, os.environ))

    # The join makes millions of short-lived objects that form no cycles (events,
    # pairs, output lines); the default gen-0 threshold (700) ran the cycle
    # collector thousands of times a second for nothing.
    gc.set_threshold(100_000, 50, 100)
    served = ProcessMetrics.start(cfg, process_id)
    status = StatusWriter(cfg.out_dir, process_id, served.metrics.progress)
    status.start()
    try:
        flow = build_flow(cfg, process_id, metrics=served.metrics)
        addresses = [a for a in addresses_arg.split(";") if a]
        cluster_main(  # type: ignore[no-untyped-call]
            flow,
            addresses,
            process_id,
            epoch_interval=timedelta(milliseconds=cfg.epoch_interval_ms),
            worker_count_per_proc=cfg.workers_per_process,
            recovery_config=worker_recovery(cfg),
        )
    except BaseException:
        served.server.close()
        raise
    status.finish()
    served.finish(cfg.metrics_linger_ms / 1000.0)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        sys.exit(worker_main(sys.argv[2:]))
    sys.exit("usage: python -m dataflows.run worker CONFIG --process-id N --addresses A;B")
