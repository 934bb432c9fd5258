"""Bytewax sources of both join sides: one source partition per input file,
each batch stamped with its partition's watermark mark.

- :mod:`~dataflows.sources.marks`: :class:`SourceBatch`, what every read of a
  partition yields (with :class:`PartitionRead`, how far it has read), and
  :class:`MarkStamper`, the partition's watermark report and heartbeat
  schedule;
- :mod:`~dataflows.sources.files`: :class:`FileSource`, the files of both sides
  (decoded by :mod:`dataflows.inputs`), and :class:`FilePosition`, a file
  partition's resume state;
- :mod:`~dataflows.sources.throttle`: the crash harness's ``--read-delay``
  (:func:`throttled`); not for production runs.
"""

from __future__ import annotations

from dataflows.sources.files import FilePartition, FilePosition, FileSource, source_format
from dataflows.sources.marks import Clock, MarkStamper, PartitionRead, SourceBatch, wall_ms
from dataflows.sources.throttle import ThrottledSource, throttled

__all__ = [
    "Clock",
    "FilePartition",
    "FilePosition",
    "FileSource",
    "MarkStamper",
    "PartitionRead",
    "SourceBatch",
    "ThrottledSource",
    "source_format",
    "throttled",
    "wall_ms",
]
