"""Bytewax sinks of a run: the output files of each shard, and the final
counters every shard and source partition reports.

- :mod:`~dataflows.sinks.files`: :class:`RowFileSink`, one file per shard and
  output (joined, late, invalid), truncated to its snapshot on resume;
- :mod:`~dataflows.sinks.out_dir`: the output directory: what in it the
  project wrote, refusing one that holds anything else, replacing a previous
  run's files (only those);
- :mod:`~dataflows.sinks.stats`: :class:`StatsSink` and
  :class:`ExecutionStatsSink` (recovering runs) write the final counters to
  ``OUT/.stats/``; :func:`run_stats` reads them back for ``run.json``;
- :mod:`~dataflows.sinks.executions`: each execution's time, so that a
  resumed run's summary counts all of them;
- :mod:`~dataflows.sinks.verdict`: what the final counters say about the
  inputs (a side's invalid share against ``--max-invalid-fraction``, a side
  without valid events).

- :mod:`~dataflows.sinks.kafka`: :class:`KafkaRowSink`, an output to a Kafka
  topic (transactions per shard committed once their epoch is durable, the
  records spooled by :mod:`dataflows.kafka.spool` until then; or at
  least once); :mod:`~dataflows.sinks.kafka_start`: the output topics and the
  delivery, settled before a run starts (:func:`prepare_kafka_outputs`).

The records they write are built in :mod:`dataflows.outputs`.
"""

from __future__ import annotations

from dataflows.sinks.executions import ExecutionRecord, Executions, read_executions
from dataflows.sinks.files import RowFileSink
from dataflows.sinks.kafka import KafkaRowPartition, KafkaRowSink, kafka_sink, ticks
from dataflows.sinks.kafka_start import prepare_kafka_outputs
from dataflows.sinks.out_dir import (
    OUTPUT_KINDS,
    check_out_dir,
    config_path,
    prepare_out_dir,
    write_config,
)
from dataflows.sinks.stats import (
    STATS_PREFIX,
    ExecutionStatsSink,
    StatsSink,
    read_stats,
    run_stats,
    stats_dir,
)
from dataflows.sinks.verdict import InputVerdict, input_verdict

__all__ = [
    "OUTPUT_KINDS",
    "STATS_PREFIX",
    "ExecutionRecord",
    "ExecutionStatsSink",
    "Executions",
    "InputVerdict",
    "KafkaRowPartition",
    "KafkaRowSink",
    "RowFileSink",
    "StatsSink",
    "check_out_dir",
    "config_path",
    "input_verdict",
    "kafka_sink",
    "prepare_kafka_outputs",
    "prepare_out_dir",
    "read_executions",
    "read_stats",
    "run_stats",
    "stats_dir",
    "ticks",
    "write_config",
]
