"""A run's settings: one frozen, validated :class:`RunConfig`, and where its
values come from.

- :mod:`~dataflows.config.run_config`: :class:`RunConfig` and
  :class:`InputConfig`, checked on construction;
- :mod:`~dataflows.config.settings`: :func:`build_config`, flags over a config
  file over the defaults (every key a file may set is listed there);
- :mod:`~dataflows.config.identity`: which settings change what a run
  outputs (a recovery store's and an output directory's identity);
- :mod:`~dataflows.config.durations` and :mod:`~dataflows.config.sizes`: the
  human forms of durations (``30m``) and sizes (``256MiB``).
"""

from __future__ import annotations

from dataflows.config.durations import format_duration, parse_duration
from dataflows.config.identity import (
    describe_changes,
    input_settings,
    join_settings,
    setting_changes,
    store_settings,
    unrecorded,
)
from dataflows.config.run_config import (
    DEFAULT_SHARDS,
    DEFAULT_STATE_MEMORY_BYTES,
    INPUT_FORMATS,
    MAX_PROCESSES,
    MAX_SHARDS,
    MAX_STATE_MEMORY_BYTES,
    MIN_STATE_MEMORY_BYTES,
    OUTPUT_FORMATS,
    InputConfig,
    RunConfig,
)
from dataflows.config.settings import DEFAULTS, KEYS, build_config, expand_paths, read_config_file
from dataflows.config.sizes import GIB, KIB, MIB, TIB, format_size, parse_size

__all__ = [
    "DEFAULTS",
    "DEFAULT_SHARDS",
    "DEFAULT_STATE_MEMORY_BYTES",
    "GIB",
    "INPUT_FORMATS",
    "KEYS",
    "KIB",
    "MAX_PROCESSES",
    "MAX_SHARDS",
    "MAX_STATE_MEMORY_BYTES",
    "MIB",
    "MIN_STATE_MEMORY_BYTES",
    "OUTPUT_FORMATS",
    "TIB",
    "InputConfig",
    "RunConfig",
    "build_config",
    "describe_changes",
    "expand_paths",
    "format_duration",
    "format_size",
    "input_settings",
    "join_settings",
    "parse_duration",
    "parse_size",
    "read_config_file",
    "setting_changes",
    "store_settings",
    "unrecorded",
]
