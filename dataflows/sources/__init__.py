"""Bytewax sources of both join sides: one source partition per input file,
each batch stamped with its partition's watermark mark.

- :mod:`~dataflows.sources.marks`: :class:`SourceBatch`, what every read of a
  partition yields (with :class:`PartitionRead`, how far it has read), and
  :class:`MarkStamper`, the partition's watermark report and heartbeat
  schedule;
- :mod:`~dataflows.sources.files`: :class:`FileSource`, the files of both sides
  (decoded by :mod:`dataflows.inputs`), and :class:`FilePosition`, a file
  partition's resume state;
- :mod:`~dataflows.sources.kafka`: :class:`KafkaSource`, the topics of the Kafka
  sides (one partition per Kafka partition; :func:`kafka_source` from a run's
  config), and :mod:`~dataflows.sources.kafka_start`: the input topics and
  reader schemas, settled before a run starts (:func:`prepare_kafka_inputs`);
- :mod:`~dataflows.sources.throttle`: the crash harness's ``--read-delay``
  (:func:`throttled`); not for production runs.
"""

from __future__ import annotations

from dataflows.sources.files import FilePartition, FilePosition, FileSource, source_format
from dataflows.sources.kafka import KafkaPartition, KafkaPosition, KafkaSource, kafka_source
from dataflows.sources.kafka_start import prepare_kafka_inputs
from dataflows.sources.marks import Clock, MarkStamper, PartitionRead, SourceBatch, wall_ms
from dataflows.sources.throttle import ThrottledSource, throttled

__all__ = [
    "Clock",
    "FilePartition",
    "FilePosition",
    "FileSource",
    "KafkaPartition",
    "KafkaPosition",
    "KafkaSource",
    "MarkStamper",
    "PartitionRead",
    "SourceBatch",
    "ThrottledSource",
    "kafka_source",
    "prepare_kafka_inputs",
    "source_format",
    "throttled",
    "wall_ms",
]
