"""The Bytewax side of recovery: ``streamjoin run --recovery-dir DIR``.

``recovery/`` holds the pieces (snapshot values, checkpoints, clean-up,
inspection); this room plugs them into the engine:

- :mod:`~dataflows.recovering.store`: what a recovery directory is valid for
  (:func:`identity_of`, :func:`check_store_settings`: every setting that
  changes the output), creating it and Bytewax's partitions on first use
  (:func:`open_store`; a lost partition afterwards is refused), a resume
  from changed input files (:func:`check_store_inputs`), a state directory on
  another filesystem (:func:`check_filesystems`) and a directory others can
  write (:func:`check_trusted`);
- :mod:`~dataflows.recovering.session`: the parent's side of an execution
  (:func:`begin`, :class:`Session`): fresh, resume or finished; the integrity
  check of the store and the epoch to resume at
  (:func:`recovery.integrity.plan_resume`, ``--resume-epoch``), the rewind to
  it, the refusal of a finished run whose inputs grew, the record of the
  input files and settings, checkpoint clean-up before, during and after the
  workers;
- :mod:`~dataflows.recovering.worker`: the workers' side
  (:func:`worker_recovery`, :func:`recovering_runtime`): the run lock, the
  ``RecoveryConfig``, restore-on-resume and snapshots of the shards;
- :mod:`~dataflows.recovering.positions`: the file sinks' snapshotted
  positions, for replay (:func:`sink_positions`).

Final counters across resumes are the stats sinks' (:mod:`dataflows.sinks`);
the crash harness's ``--read-delay`` throttle is a source's
(:mod:`dataflows.sources`).
"""

from __future__ import annotations

from dataflows.recovering.positions import sink_positions
from dataflows.recovering.session import JOIN_STEP_SUFFIX, RUN_CONFIG_NAME, Session, begin
from dataflows.recovering.store import (
    check_store_inputs,
    default_partitions,
    identity_of,
    input_paths,
    open_store,
    view_has_executions,
)
from dataflows.recovering.worker import recovering_runtime, worker_recovery

__all__ = [
    "JOIN_STEP_SUFFIX",
    "RUN_CONFIG_NAME",
    "Session",
    "begin",
    "check_store_inputs",
    "default_partitions",
    "identity_of",
    "input_paths",
    "open_store",
    "recovering_runtime",
    "sink_positions",
    "view_has_executions",
    "worker_recovery",
]
