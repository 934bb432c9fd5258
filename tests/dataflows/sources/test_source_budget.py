"""Many source partitions a process: each batch a share of the budget."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from dataflows.config import build_config
from dataflows.config.source_budget import (
    MIN_BATCH,
    MIN_PREFETCH_KIB,
    READS_IN_FLIGHT,
    partition_batch_size,
    partitions_per_process,
    prefetch_kib,
)
from dataflows.sources import FileSource


@given(
    batch=st.integers(1, 1_000_000),
    partitions=st.integers(1, 5_000),
    processes=st.integers(1, 64),
)
def test_a_process_holds_at_most_its_budget_or_the_minimum_batches(
    batch: int, partitions: int, processes: int
) -> None:
    size = partition_batch_size(batch, partitions, processes)
    local = partitions_per_process(partitions, processes)
    assert 1 <= size <= batch
    budget = READS_IN_FLIGHT * batch
    assert local * size <= max(budget, local * MIN_BATCH)
    if local <= READS_IN_FLIGHT:
        assert size == batch  # a few partitions keep --batch-size
    else:
        assert size == min(batch, max(MIN_BATCH, budget // local))
    assert prefetch_kib(partitions, processes) >= MIN_PREFETCH_KIB


def test_a_directory_of_many_files_reads_smaller_batches(tmp_path: Path) -> None:
    lines = 4_000
    for side in ("left", "right"):
        for i in range(40):
            (tmp_path / f"{side}-{i:02d}.jsonl").write_text(
                "".join(f'{{"key":"k{n}","ts":{n}}}\n' for n in range(lines))
            )
    cfg = build_config(
        {"left": str(tmp_path / "left-*.jsonl"), "right": str(tmp_path / "right-*.jsonl"),
         "out": str(tmp_path / "out")},
        environ={},
    )  # fmt: skip
    assert cfg.batch_size == 10_000
    source = FileSource(cfg)
    part = source.build_part("in", source.list_parts()[0], None)
    first = part.next_batch()
    # 80 partitions in one process: 20 reads of 10,000 shared, 2,500 records a read.
    assert sum(len(b.events) + len(b.invalid) for b in first) == 2_500
    part.close()
