"""The output directory of a run (``--out``): what in it the project wrote, and
replacing a previous run's outputs without touching anything else.

A run writes, under ``OUT``::

    joined/<shard>.jsonl|avro   late/...   invalid/...    one file per shard (RowFileSink)
    run.json                                              the summary
    .run/config.json, .run/metrics-<i>.json               the configuration; metrics endpoints
    .run/status-<i>.json, .run/execution-<ns>.json        progress; each execution's time
    .stats/worker-<i>.jsonl, .stats/ex-<ns>-w<i>.jsonl    final counters
    state/<shard>/                                        RocksDB, when --state-dir is the default

``.run/config.json`` is written first: it marks the directory as a run's.
:func:`check_out_dir` accepts an ``OUT`` that is missing, empty, or holds a
run of the *same configuration* (the same settings that change the output,
:func:`dataflows.config.store_settings`, and the same input files): the
same command run again. It refuses (:class:`~dataflows.errors.ConfigError`)
any other non-empty directory, a run of another configuration, and a file
inside those subdirectories that the project would not have written there
(it would be deleted, or read by ``streamjoin validate`` as output).
:func:`prepare_out_dir` then deletes exactly the files the list above names,
and never anything else: entries of ``OUT`` that are not in the list are left
alone, and so are the recovery and state directories when they live inside
``OUT``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from dataflows.config import RunConfig, describe_changes, setting_changes, store_settings
from dataflows.errors import ConfigError

#: Output subdirectories, one file per shard each.
OUTPUT_KINDS = ("joined", "late", "invalid")
RUN_JSON = "run.json"
CONFIG_NAME = os.path.join(".run", "config.json")

_SHARD = r"s[0-9]{4,}-[0-9]+"
#: What the project writes in each of its subdirectories of OUT.
_OURS: dict[str, re.Pattern[str]] = {
    **{kind: re.compile(rf"{_SHARD}\.(?:jsonl|avro)") for kind in OUTPUT_KINDS},
    ".stats": re.compile(r"worker-[0-9]{3,}\.jsonl|ex-[0-9]{20}-w[0-9]{3,}\.jsonl"),
    ".run": re.compile(
        r"(?:config|(?:metrics|status)-[0-9]+|execution-[0-9]{20})\.json(?:\.tmp)?"
    ),
    "state": re.compile(rf"{_SHARD}(?:\.cloning)?"),
}


def config_path(out_dir: str) -> str:
    """``OUT/.run/config.json``: the run's configuration (what workers start with)."""
    return os.path.join(out_dir, CONFIG_NAME)


def _inputs(cfg: RunConfig) -> dict[str, str]:
    return {f"--{side.side}": ", ".join(side.paths) for side in (cfg.left, cfg.right)}


def _identity(cfg: RunConfig) -> dict[str, str]:
    return {**store_settings(cfg), **_inputs(cfg)}


def _inside(path: str, out_dir: str) -> bool:
    return os.path.abspath(path).startswith(os.path.abspath(out_dir) + os.sep)


def _kept_apart(cfg: RunConfig) -> set[str]:
    """Top-level entries of OUT that hold the recovery or state directory."""
    kept: set[str] = set()
    for path in (cfg.recovery_dir, cfg.state_dir):
        if path and _inside(path, cfg.out_dir):
            kept.add(os.path.relpath(os.path.abspath(path), cfg.out_dir).split(os.sep)[0])
    return kept


def _previous(cfg: RunConfig) -> RunConfig | None:
    path = config_path(cfg.out_dir)
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        msg = f"--out {cfg.out_dir}: cannot read {path}: {exc.strerror or exc}"
        raise ConfigError(msg) from exc
    try:
        return RunConfig.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        msg = (
            f"--out {cfg.out_dir} holds a run whose configuration ({path}) cannot be read "
            f"({exc}): give a new or empty directory"
        )
        raise ConfigError(msg) from exc


def _foreign(cfg: RunConfig) -> list[str]:
    """Files in the project's subdirectories of OUT that it did not write."""
    found: list[str] = []
    default_state = os.path.join(cfg.out_dir, "state")
    for sub, pattern in _OURS.items():
        directory = os.path.join(cfg.out_dir, sub)
        if sub == "state" and cfg.state_dir != default_state:
            continue  # then OUT/state is not ours: left alone
        if not os.path.isdir(directory):
            continue
        found.extend(
            os.path.join(directory, name)
            for name in sorted(os.listdir(directory))
            if not pattern.fullmatch(name)
        )
    return found


def check_out_dir(cfg: RunConfig) -> None:
    """Refuse an ``--out`` that holds anything but a run of ``cfg``'s
    configuration (see the module docstring). Writes nothing."""
    out = cfg.out_dir
    if not os.path.isdir(out):
        if os.path.exists(out):
            msg = (
                f"--out {out} is a file, not a directory: give a new directory (or an earlier "
                "run's) for joined/, late/, invalid/ and run.json"
            )
            raise ConfigError(msg)
        return
    previous = _previous(cfg)
    if previous is None:
        others = sorted(set(os.listdir(out)) - _kept_apart(cfg))
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            msg = (
                f"--out {out} is not empty ({shown}) and holds no streamjoin run (no "
                f"{CONFIG_NAME}): give a new or empty directory, so that nothing in it is "
                "replaced"
            )
            raise ConfigError(msg)
        return
    changes = setting_changes(_identity(previous), _identity(cfg))
    if changes:
        msg = (
            f"--out {out} holds the outputs of a run with other settings: "
            f"{describe_changes(changes)}. Give a new or empty directory, or remove the "
            "old outputs yourself"
        )
        raise ConfigError(msg)
    foreign = _foreign(cfg)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        msg = (
            f"--out {out} holds files streamjoin did not write where it writes its outputs "
            f"({shown}): move them away, or give another --out"
        )
        raise ConfigError(msg)


def write_config(cfg: RunConfig) -> None:
    """(Re)write ``OUT/.run/config.json`` atomically, creating ``OUT``'s dirs."""
    path = config_path(cfg.out_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(cfg.to_json(), f, indent=2)
    os.replace(path + ".tmp", path)
    for kind in OUTPUT_KINDS:
        os.makedirs(os.path.join(cfg.out_dir, kind), exist_ok=True)


def prepare_out_dir(cfg: RunConfig) -> None:
    """Make ``cfg.out_dir`` ready for a fresh run: refuse what
    :func:`check_out_dir` refuses, delete a previous run's files (only those),
    and write the new configuration."""
    check_out_dir(cfg)
    out = cfg.out_dir
    default_state = os.path.join(out, "state")
    for sub, pattern in _OURS.items():
        directory = os.path.join(out, sub)
        if (sub == "state" and cfg.state_dir != default_state) or not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            if not pattern.fullmatch(name):
                continue
            path = os.path.join(directory, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        if sub != ".run" and not os.listdir(directory):
            os.rmdir(directory)
    run_json = os.path.join(out, RUN_JSON)
    if os.path.isfile(run_json):
        os.remove(run_json)
    write_config(cfg)
