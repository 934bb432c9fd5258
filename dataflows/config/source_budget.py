"""What a process's source partitions may hold at once.

Bytewax asks each source partition of a worker for its next batch in one
activation, and the join sees the batches only after. So a process holds up to
one batch per partition at a time, and a batch of ``--batch-size`` records
(default 10,000) each, fine for a file a side, held gigabytes with many
partitions per process: W-2M over 96 files a side peaked at 4.3 GiB of RSS
in one process, against 0.9 GiB over one file a side, and 527k events over 64
files a side at 1,469 MiB with batches of 10,000, 888 MiB with 1,562 and 662
MiB with 500 (2026-11-30, ``bench/kafka_run_bench.py`` and ``streamjoin run
--batch-size``). So a process holds at most :data:`READS_IN_FLIGHT` reads'
worth of records: with more partitions than that, each partition's batch is
cut to its share, never below :data:`MIN_BATCH`. A run of a few partitions a
process keeps ``--batch-size``; a larger ``--batch-size`` buys throughput
with memory either way (measured on those 64 files a side, one process:
batches of 1,562 instead of 10,000 took 11% more CPU and 40% less peak RSS,
845 against 1,405 MiB).

A Kafka partition's consumer also prefetches: librdkafka queues up to
``queued.max.messages.kbytes`` (64 MiB by default) per consumer, and each
partition has its own consumer, so 96 partitions could queue 6 GiB. Unless
set with ``--kafka-config``, each consumer gets its share of
:data:`PREFETCH_KIB` a process, never below :data:`MIN_PREFETCH_KIB`.
"""

from __future__ import annotations

#: Reads of ``--batch-size`` records a process's partitions may hold at once.
READS_IN_FLIGHT = 20
#: The smallest batch a partition is cut to (smaller ones cost throughput).
MIN_BATCH = 1_000
#: librdkafka's prefetch queue a process's Kafka consumers share, in KiB.
PREFETCH_KIB = 256 * 1024
#: The smallest prefetch queue of one consumer, in KiB.
MIN_PREFETCH_KIB = 2 * 1024
#: librdkafka's setting of a consumer's prefetch queue.
PREFETCH_SETTING = "queued.max.messages.kbytes"


def partitions_per_process(partitions: int, processes: int) -> int:
    """The partitions one process reads (at most; Bytewax spreads them)."""
    return max(1, -(-partitions // max(1, processes)))


def partition_batch_size(batch_size: int, partitions: int, processes: int) -> int:
    """The batch of one of ``partitions`` source partitions spread over
    ``processes``, given ``--batch-size``."""
    share = READS_IN_FLIGHT * batch_size // partitions_per_process(partitions, processes)
    return min(batch_size, max(MIN_BATCH, share))


def prefetch_kib(partitions: int, processes: int) -> int:
    """The prefetch queue of one Kafka consumer, in KiB."""
    share = PREFETCH_KIB // partitions_per_process(partitions, processes)
    return max(MIN_PREFETCH_KIB, share)
