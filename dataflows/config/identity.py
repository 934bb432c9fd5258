"""What belongs to a run's identity: every setting that changes what the output
would be, named as the user writes the flag.

A recovery store and an output directory hold the work of one configuration.
Resuming a store (or writing into an output directory) under another one would
mix two interpretations of the input in one result, with nothing to show for
it but wrong numbers. :func:`store_settings` lists them:

- the join: ``--how``, ``--lower``, ``--upper``, ``--max-out-of-orderness``,
  ``--allowed-lateness``, ``--idle-timeout``;
- ``--shards`` (which shard, state and output file a key belongs to);
- how the input is read: ``--format``, ``--key-field``, ``--time-field``,
  ``--time-unit``;
- how the output is written: ``--output-format``.

Not part of it: what only changes how fast or where the same result is made
(``--processes``, ``--workers-per-process``, ``--batch-size``,
``--heartbeat``, ``--state-memory``, ``--state-dir``, the metrics flags,
``--snapshot-interval``, ``--backup-interval``, ``--read-delay``). The
exactness theorem holds for any interleaving, batching and process count, so
those may change between executions. The input files themselves are recorded
separately (:mod:`recovery.inputs`).

:func:`setting_changes` compares two such records; :func:`describe_changes`
words the differences for a one-line refusal.
"""

from __future__ import annotations

from collections.abc import Mapping

from dataflows.config.durations import format_duration
from dataflows.config.run_config import InputConfig, RunConfig
from joins import JoinSpec

#: A setting's value when a record does not have it.
UNSET = "(not set)"


def join_settings(spec: JoinSpec, shards: int) -> dict[str, str]:
    """The join's part of the identity (what a recovery manifest written before
    the settings were recorded still tells, through its JoinSpec and shards)."""
    return {
        "--how": spec.how,
        "--lower": format_duration(spec.lower_ms),
        "--upper": format_duration(spec.upper_ms),
        "--max-out-of-orderness": format_duration(spec.max_out_of_orderness_ms),
        "--allowed-lateness": format_duration(spec.allowed_lateness_ms),
        "--idle-timeout": format_duration(spec.idle_timeout_ms),
        "--shards": str(shards),
    }


def _per_side(left: InputConfig, right: InputConfig, value: str, other: str) -> str:
    return value if value == other else f"left {value}, right {other}"


def input_settings(left: InputConfig, right: InputConfig) -> dict[str, str]:
    """How both sides' records are read (one value when both sides agree)."""
    return {
        "--format": _per_side(left, right, left.format, right.format),
        "--key-field": _per_side(left, right, ",".join(left.key_fields),
                                 ",".join(right.key_fields)),
        "--time-field": _per_side(left, right, left.time_field, right.time_field),
        "--time-unit": _per_side(left, right, left.time_unit, right.time_unit),
    }


def store_settings(cfg: RunConfig) -> dict[str, str]:
    """Every setting of ``cfg`` that changes what its output would be, flag -> value."""
    return {
        **join_settings(cfg.spec, cfg.shards),
        **input_settings(cfg.left, cfg.right),
        "--output-format": cfg.output_format,
    }


def setting_changes(
    recorded: Mapping[str, str], current: Mapping[str, str]
) -> list[tuple[str, str, str]]:
    """``(flag, recorded value, current value)`` for every setting both records
    have and that differs, in ``current``'s order."""
    return [
        (name, recorded[name], value)
        for name, value in current.items()
        if name in recorded and recorded[name] != value
    ]


def unrecorded(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """Settings ``current`` has and ``recorded`` lacks (an older record)."""
    return [name for name in current if name not in recorded]


def describe_changes(changes: list[tuple[str, str, str]]) -> str:
    """``--upper was 30m, now 1h; --key-field was user_id, now key``."""
    return "; ".join(f"{name} was {old}, now {new}" for name, old, new in changes)
