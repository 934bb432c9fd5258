"""Recovery wiring of ``streamjoin run --recovery-dir DIR`` (issue #4).

``recovery/`` holds the pieces (snapshot values, checkpoints, clean-up,
inspection); the ``dataflows.recovering_*`` modules plug them into the engine.
This module is their entry point (callers import from here):

- :mod:`dataflows.recovering_store`: what a recovery directory is valid for
  (:func:`identity_of`), creating it and Bytewax's partitions on first use
  (:func:`open_store`), refusing another join configuration or shard count,
  and a resume from changed input files (:func:`check_store_inputs`);
- :mod:`dataflows.recovering_session`: the parent's side of an execution
  (:func:`begin`, :class:`Session`): fresh, resume or finished; the pruning
  of unloadable rows, the record of the input files, checkpoint clean-up
  before, during and after the workers;
- :mod:`dataflows.recovering_worker`: the workers' side
  (:func:`worker_recovery`, :func:`recovering_runtime`): the run lock, the
  ``RecoveryConfig``, restore-on-resume and snapshots of the shards;
- :mod:`dataflows.recovering_stats`: final counters across resumes
  (:class:`ExecutionStatsSink`, :func:`run_stats`);
- :mod:`dataflows.recovering_positions`: the file sinks' snapshotted
  positions, for replay (:func:`sink_positions`);
- :mod:`dataflows.recovering_throttle`: the crash harness's test throttle,
  ``--read-delay`` (:class:`ThrottledSource`, :func:`throttled`); not for
  production runs.
"""

from __future__ import annotations

from dataflows.recovering_positions import sink_positions
from dataflows.recovering_session import JOIN_STEP_SUFFIX, RUN_CONFIG_NAME, Session, begin
from dataflows.recovering_stats import STATS_PREFIX, ExecutionStatsSink, run_stats
from dataflows.recovering_store import (
    check_store_inputs,
    default_partitions,
    identity_of,
    input_paths,
    open_store,
    view_has_executions,
)
from dataflows.recovering_throttle import ThrottledSource, throttled
from dataflows.recovering_worker import recovering_runtime, worker_recovery

__all__ = [
    "JOIN_STEP_SUFFIX",
    "RUN_CONFIG_NAME",
    "STATS_PREFIX",
    "ExecutionStatsSink",
    "Session",
    "ThrottledSource",
    "begin",
    "check_store_inputs",
    "default_partitions",
    "identity_of",
    "input_paths",
    "open_store",
    "recovering_runtime",
    "run_stats",
    "sink_positions",
    "throttled",
    "view_has_executions",
    "worker_recovery",
]
