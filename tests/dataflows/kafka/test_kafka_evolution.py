"""Schema evolution mid-stream, across a restart: Confluent Avro impressions
written with v1, read by an unbounded run with reader schema v1 that retains
them in its state and is stopped (SIGTERM); then v2 records (a field added with
a default) on the same topic, and the run resumed with reader v2 and
``--until-end``. The impressions held in the state since v1 join the plays
that arrive after the restart; v1 records still on the topic read as v2 with
the default; a record whose writer schema cannot be resolved to the reader is
a dead letter with its reason. ``streamjoin validate`` reads each record with
the reader schema the run used for it, and finds an exact match."""

from __future__ import annotations

import io
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
from kafka_runs import (
    Server,
    kafka_server,
    kill_group,
    put,
    run_json,
    start,
    streamjoin,
    topics,
    url,
    validate,
    wait_for,
)

from dataflows.inputs.confluent_wire import frame
from dataflows.kafka import LocalSchemaRegistry, SchemaRegistry, subject_of
from dataflows.outputs import read_rows

pytestmark = pytest.mark.slow

T0 = 1_700_000_000_000
V1: dict[str, Any] = {"type": "record", "name": "Impression", "fields": [
    {"name": "key", "type": "string"}, {"name": "ts", "type": "long"},
    {"name": "n", "type": "int"}]}
V2: dict[str, Any] = {**V1, "fields": [*V1["fields"],
                                       {"name": "campaign", "type": "string", "default": "none"}]}
#: ``ts`` as text: no Avro resolution turns it into the reader's long.
BAD: dict[str, Any] = {"type": "record", "name": "Impression", "fields": [
    {"name": "key", "type": "string"}, {"name": "ts", "type": "string"}]}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from kafka_server()


def avro(schema_id: int, schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), datum)
    return frame(schema_id, buf.getvalue())


def play(key: str, ts_ms: int) -> bytes:
    return json.dumps({"key": key, "ts": T0 + ts_ms}).encode()


def test_v1_then_v2_on_one_topic_across_a_restart(
    tmp_path: Path, server: Server, registry: LocalSchemaRegistry
) -> None:
    t = topics(server, impressions=2, plays=1)
    client = SchemaRegistry(registry.url)
    v1 = client.register(subject_of(t["impressions"]), V1)
    for p in (0, 1):
        put(server, t["impressions"], p, [avro(v1, V1, {"key": f"k{p}{i}", "ts": T0 + i * 1000,
                                                        "n": i}) for i in range(10)])
    (tmp_path / "v1.avsc").write_text(json.dumps(V1))
    (tmp_path / "v2.avsc").write_text(json.dumps(V2))
    out, rec = tmp_path / "out", tmp_path / "rec"
    common = ["run", "--left", url(server, t["impressions"]), "--right", url(server, t["plays"]),
              "--left-format", "avro", "--right-format", "jsonl", "--schema-registry",
              registry.url, "--how", "left", "--upper", "1h", "--shards", "4",
              "--out", str(out), "--recovery-dir", str(rec), "--snapshot-interval", "300ms",
              "--metrics-port", "0", "--metrics-linger", "0"]
    # Unbounded, reader v1: the impressions are read and held (no play yet).
    first = start(*common, "--left-schema", str(tmp_path / "v1.avsc"))
    try:
        wait_for(lambda: _snapshotted_offsets(rec) >= 20, 60, "the v1 records in a snapshot")
    finally:
        kill_group(first, signal.SIGTERM)
    # v2 on the same topic (registered as the subject's next version), plays for
    # the v1 impressions (held in the state) and the v2 ones, one record that
    # does not resolve.
    v2 = client.register(subject_of(t["impressions"]), V2)
    bad = client.register(f"{t['impressions']}-bad-value", BAD)
    put(server, t["impressions"], 0, [avro(v2, V2, {"key": f"k2{i}", "ts": T0 + 20_000 + i,
                                                    "n": i, "campaign": "spring"})
                                      for i in range(5)])
    put(server, t["impressions"], 1, [avro(v1, V1, {"key": "k3", "ts": T0 + 21_000, "n": 7}),
                                      avro(bad, BAD, {"key": "k4", "ts": "later"})])
    put(server, t["plays"], 0, [play(f"k{p}{i}", i * 1000 + 60_000) for p in (0, 1)
                                for i in range(10)] + [play(f"k2{i}", 21_000 + i)
                                                      for i in range(5)] + [play("k3", 22_000)])
    done = streamjoin(*common, "--left-schema", str(tmp_path / "v2.avsc"), "--until-end")
    assert done.returncode == 0, done.stderr[-3000:]
    assert run_json(out)["recovery"]["mode"] == "resume"
    rows = list(read_rows(out / "joined"))
    pairs = {r["left"]["key"]: r["left"] for r in rows if r["kind"] == "match"}
    assert len(pairs) == 26
    # Held since before the restart, read with v1: as v1 read them.
    assert pairs["k00"] == {"key": "k00", "ts": T0, "n": 0}
    # Written with v2, and a v1 record read after the restart with reader v2.
    assert pairs["k20"]["campaign"] == "spring"
    assert pairs["k3"]["campaign"] == "none"
    [dead] = list(read_rows(out / "invalid"))
    assert dead["reason"].startswith("avro: cannot resolve to the reader schema")
    assert dead["partition"] == f"left:{t['impressions']}:1"
    assert dead["offset"] == 11
    readers = run_json(out)["kafka"]["partitions"][f"left:{t['impressions']}:0"]["readers"]
    assert [(offset, schema["fields"][-1]["name"]) for offset, schema in readers] == [
        (0, "n"), (10, "campaign")]
    ok, report = validate(out)
    assert ok, report


def _snapshotted_offsets(rec: Path) -> int:
    """How far the Kafka partitions' durable snapshots have read, in all."""
    from recovery.partitions import read_partitions

    try:
        view = read_partitions(rec)
    except Exception:  # not initialised yet
        return 0
    total = 0
    for (step, _key), row in view.resumable_rows().items():
        if step.endswith("kafka_inputs") and row.data is not None:
            import pickle

            position = pickle.loads(row.data)  # noqa: S301 - our own test store
            total += int(getattr(position, "next_offset", 0))
    return total
