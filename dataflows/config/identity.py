"""What belongs to a run's identity: every setting that changes what the output
would be, named as the user writes the flag.

A recovery store and an output directory hold the work of one configuration.
Resuming a store (or writing into an output directory) under another one would
mix two interpretations of the input in one result, with nothing to show for
it but wrong numbers. :func:`store_settings` lists them:

- the join: ``--how``, ``--lower``, ``--upper``, ``--max-out-of-orderness``,
  ``--allowed-lateness``, ``--idle-timeout``;
- ``--shards`` (which shard, state and output file a key belongs to);
- how each side's input is read: ``--left-format``, ``--left-key-field``,
  ``--left-time-field``, ``--left-time-unit`` and the same for the right side
  (``--format`` and the like set both); for a Kafka side, its topic
  (``--left-topic``: the topic of ``--left kafka://...``; not the brokers, which
  may move, and not the reader schema, which may evolve);
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


def input_settings(left: InputConfig, right: InputConfig) -> dict[str, str]:
    """How each side's records are read, by the per-side flags
    (``--left-key-field``: ``--key-field`` sets both)."""
    out: dict[str, str] = {}
    for name, get in (
        ("format", lambda c: c.format),
        ("key-field", lambda c: ",".join(c.key_fields)),
        ("time-field", lambda c: c.time_field),
        ("time-unit", lambda c: c.time_unit),
    ):
        for side_cfg in (left, right):
            out[f"--{side_cfg.side}-{name}"] = str(get(side_cfg))
    for side_cfg in (left, right):
        if side_cfg.kafka:  # a Kafka side's topic (its brokers may move)
            out[f"--{side_cfg.side}-topic"] = side_cfg.kafka.rsplit("/", 1)[-1]
    return out


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
    """``--upper was 30m, now 1h; --key-field was user_id, now key``: a change
    of both sides alike is named by the shared flag, as the user would set it."""
    both = {(n[len("--left-"):], old, new) for n, old, new in changes if n.startswith("--left-")}
    words: list[str] = []
    for name, old, new in changes:
        for side in ("--left-", "--right-"):
            if name.startswith(side) and (name[len(side):], old, new) in both and any(
                n == "--right-" + name[len(side):] and o == old and w == new
                for n, o, w in changes
            ):
                if side == "--left-":
                    words.append(f"--{name[len(side):]} was {old}, now {new}")
                break
        else:
            words.append(f"{name} was {old}, now {new}")
    return "; ".join(words)
