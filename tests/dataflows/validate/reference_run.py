"""A pure-Python reference driver of a run (no Bytewax), for validate's tests.

It decodes the inputs with the run's decoders (``dataflows.inputs.read_batches``),
feeds them batch by batch in a seeded random interleaving to
``joins.IntervalJoiner`` over ``joins.MemoryStore``, and writes the outputs with
``dataflows.outputs.records`` plus ``run.json``: what the engine produces.
``alter`` stands in for a decoder bug: it sees each decoded batch and returns
what the run should make of it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dataflows.inputs import Invalid, SourceFormat, read_batches
from dataflows.outputs import records
from joins import Event, IntervalJoiner, JoinSpec, MemoryStore, PartitionMark

Alter = Callable[[list[Event | Invalid]], list[Event | Invalid]]


def run_reference(
    paths: dict[str, Sequence[Path]],
    out: Path,
    spec: JoinSpec,
    *,
    fmt: str = "jsonl",
    key_fields: tuple[str, ...] = ("key",),
    time_field: str = "ts",
    time_unit: str = "ms",
    output_format: str = "jsonl",
    batch_size: int = 37,
    seed: int = 7,
    alter: Alter | None = None,
) -> Path:
    """Join the files ``paths[side]`` like the engine would and write a run
    directory ``out``."""
    source = SourceFormat(fmt, key_fields=key_fields, time_field=time_field,  # type: ignore[arg-type]
                          time_unit=time_unit)  # type: ignore[arg-type]
    readers: dict[str, Any] = {}
    for side in ("left", "right"):
        for i, path in enumerate(paths[side]):
            partition = f"{side}:{i}:{path.name}"
            readers[partition] = iter(read_batches(str(path), side, source, partition, 0,  # type: ignore[arg-type]
                                                   batch_size))
    now = [0]

    def clock() -> int:
        now[0] += 1
        return now[0]

    joiner = IntervalJoiner(spec, MemoryStore(), list(readers), clock)
    rows: dict[str, list[dict[str, Any]]] = {"joined": [], "late": [], "invalid": []}
    invalid = {"left": 0, "right": 0}

    def collect(result: Any) -> None:
        rows["joined"] += [records.joined_record(m) for m in result.matched]
        rows["joined"] += [records.joined_record(u) for u in result.unmatched]
        rows["late"] += [records.late_record(x) for x in result.late]

    rng = random.Random(seed)
    while readers:
        partition = rng.choice(sorted(readers))
        batch = next(readers[partition], None)
        if batch is None:
            del readers[partition]
            collect(joiner.advance([PartitionMark(partition, None, clock(), closed=True)]))
            continue
        items = batch[0] if alter is None else alter(batch[0])
        events = [x for x in items if isinstance(x, Event)]
        for bad in items:
            if isinstance(bad, Invalid):
                rows["invalid"].append(records.invalid_record(bad))
                invalid[bad.side] += 1
        collect(joiner.process(events))
    collect(joiner.close())
    for kind, kind_rows in rows.items():
        (out / kind).mkdir(parents=True)
        path = out / kind / f"part-0.{output_format}"
        with path.open("wb") as fo:
            if output_format == "avro":
                records.write_avro(fo, kind, kind_rows)  # type: ignore[arg-type]
            else:
                records.write_jsonl(fo, kind_rows)
    side_inputs = {
        side: {"paths": [str(p) for p in paths[side]], "format": fmt,
               "key_fields": list(key_fields), "time_field": time_field, "time_unit": time_unit}
        for side in ("left", "right")
    }
    run = {
        "version": 1,
        "spec": {
            "lower_ms": spec.lower_ms, "upper_ms": spec.upper_ms, "how": spec.how,
            "max_out_of_orderness_ms": spec.max_out_of_orderness_ms,
            "allowed_lateness_ms": spec.allowed_lateness_ms,
            "idle_timeout_ms": spec.idle_timeout_ms,
        },
        "inputs": side_inputs,
        "output_format": output_format,
        "counters": {**joiner.counters.to_dict(), "invalid": invalid},
        "processes": 1,
    }
    (out / "run.json").write_text(json.dumps(run, indent=1))
    return out
