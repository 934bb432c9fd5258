"""Throughput of ``streamjoin run`` from Kafka topics against the same data from
files (not a test).

Generates the reference workload (W-2M: 2M impressions over 500,000 keys, play
rate 0.3, 5% orphan plays, 5 s disorder, 0.2% late) split into ``--partitions``
files a side, produces file ``i`` of each side to partition ``i`` of a topic on
librdkafka's mock cluster (a helper process, reached over TCP), then runs the
same left join (30 minute window, outputs to files) through the real CLI from
the files and from the topics (``--until-end``), with 1 and with 2 processes,
and prints events/s and the peak RSS of streamjoin's processes (the mock
cluster's own memory is reported apart: it is the broker, not the join).

The mock cluster keeps at most 5 MiB per partition, so the data is spread over
enough partitions to stay under it (96 a side for W-2M); the file runs read
the same 96 files a side, so both runs have the same source partitions.

    .venv/bin/python bench/kafka_run_bench.py --work /tmp/kbench
    .venv/bin/python bench/kafka_run_bench.py --impressions 200000 --keys 50000 --partitions 16
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dataflows.generator import GeneratorConfig, generate
from dataflows.inputs import SourceFormat
from dataflows.kafka import KafkaSettings, MockClusterProcess
from dataflows.kafka.produce import file_items, produce


def dataset(work: Path, impressions: int, keys: int, partitions: int) -> Path:
    """The benchmark's input, generated unless an identical one is there."""
    cfg = GeneratorConfig(impressions=impressions, keys=keys, play_rate=0.3, orphan_rate=0.05,
                          disorder_ms=5_000, late_fraction=0.002, seed=1, partitions=partitions)
    data = work / f"data-{impressions}-{keys}-p{partitions}"
    stamp = data / "generator.json"
    wanted = json.dumps(cfg.__dict__, sort_keys=True)
    if stamp.exists() and stamp.read_text() == wanted:
        return data
    t0 = time.monotonic()
    ds = generate(data, cfg, format="jsonl", progress=True)
    total = sum(c.records for c in ds.counts.values())
    print(f"generated {total:,} events in {time.monotonic() - t0:.0f} s -> {data}", flush=True)
    stamp.write_text(wanted)
    return data


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def run_once(args: list[str], out: Path) -> dict[str, object]:
    cmd = [sys.executable, "-m", "dataflows.cli", "run", *args, "--how", "left",
           "--upper", "30m", "--out", str(out), "--metrics-port", "0", "--metrics-linger", "0"]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    summary: dict[str, object] = json.loads((out / "run.json").read_text())
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="bench-runs", help="data and outputs directory")
    parser.add_argument("--impressions", type=int, default=2_000_000)
    parser.add_argument("--keys", type=int, default=500_000)
    parser.add_argument("--partitions", type=int, default=96, help="files and Kafka partitions "
                        "a side (the mock cluster keeps 5 MiB a partition)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--validate", action="store_true", help="validate each run")
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    data = dataset(work, args.impressions, args.keys, args.partitions)
    left = sorted(data.glob("impressions*.jsonl"))
    right = sorted(data.glob("plays*.jsonl"))
    results: list[tuple[str, int, dict[str, object]]] = []
    with MockClusterProcess(topics={"impressions": len(left), "plays": len(right)}) as mock:
        t0 = time.monotonic()
        records = 0
        for topic, paths in (("impressions", left), ("plays", right)):
            for i, path in enumerate(paths):
                report = produce(KafkaSettings(), mock.bootstrap, topic,
                                 file_items(str(path), SourceFormat("jsonl")),
                                 partition_of=lambda _n, i=i: i)
                records += report.records
        produced_s = time.monotonic() - t0
        print(f"produced {records:,} records in {produced_s:.1f} s "
              f"({records / produced_s:,.0f}/s); mock cluster RSS "
              f"{rss_kib(mock.pid) / 1024:,.0f} MiB", flush=True)
        kafka = [f"kafka://{mock.bootstrap}/impressions", f"kafka://{mock.bootstrap}/plays"]
        for n in args.processes:
            for source in ("files", "kafka"):
                out = work / f"out-{source}-p{n}"
                inputs = (["--left", str(data / "impressions*.jsonl"),
                           "--right", str(data / "plays*.jsonl")] if source == "files" else
                          ["--left", kafka[0], "--right", kafka[1], "--until-end"])
                summary = run_once([*inputs, "--processes", str(n)], out)
                results.append((source, n, summary))
                if args.validate:
                    subprocess.run([sys.executable, "-m", "dataflows.cli", "validate", str(out)],
                                   check=True)
                for kind in ("joined", "late", "invalid", "state"):  # gigabytes at W-2M
                    shutil.rmtree(out / kind, ignore_errors=True)
        broker_mib = rss_kib(mock.pid) / 1024
    print("\n| input | processes | events/s | peak RSS (streamjoin's processes) | pairs |"
          "\n|---|---|---|---|---|")
    for source, n, s in results:
        counters = s["counters"]
        assert isinstance(counters, dict)
        print(f"| {source} | {n} | {float(str(s['events_per_s'])):,.0f} | "
              f"{int(str(s['peak_rss_bytes'])) / 2**20:,.0f} MiB | {counters['pairs']:,} |")
    print(f"\nmock cluster (the broker) RSS at the end: {broker_mib:,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
