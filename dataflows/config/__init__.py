"""A run's settings: one frozen, validated :class:`RunConfig`, and where its
values come from.

- :mod:`~dataflows.config.run_config`: :class:`RunConfig` and
  :class:`InputConfig`, checked on construction;
- :mod:`~dataflows.config.settings`: :func:`build_config`, flags over
  ``STREAMJOIN_*`` environment variables over a config file over the defaults,
  and :func:`resolve`, which says where each setting came from (every setting
  is listed there);
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
from dataflows.config.settings import (
    DEFAULTS,
    KEYS,
    Setting,
    build_config,
    config_of,
    effective_settings,
    env_of,
    expand_paths,
    flag_of,
    format_settings,
    read_config_file,
    resolve,
)
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
    "Setting",
    "build_config",
    "config_of",
    "describe_changes",
    "effective_settings",
    "env_of",
    "expand_paths",
    "flag_of",
    "format_duration",
    "format_settings",
    "format_size",
    "input_settings",
    "join_settings",
    "parse_duration",
    "parse_size",
    "read_config_file",
    "resolve",
    "setting_changes",
    "store_settings",
    "unrecorded",
]
