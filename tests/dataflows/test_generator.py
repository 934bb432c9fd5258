"""The generator: deterministic, the promised shapes, counts and defects."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest

from dataflows.errors import ConfigError
from dataflows.generator import GeneratorConfig, generate
from dataflows.inputs import Invalid, SourceFormat, read_batches
from dataflows.progress import Progress
from joins import Event

SMALL = GeneratorConfig(
    impressions=3000, keys=300, window_ms=20_000, late_fraction=0.01, late_lag_ms=10_000,
    duplicate_fraction=0.01, malformed_fraction=0.002, rate_per_s=20.0, partitions=2,
)


def decode(paths: tuple[Path, ...], fmt: str) -> list[Event | Invalid]:
    return [
        x
        for i, p in enumerate(paths)
        for batch, _ in read_batches(str(p), "left", SourceFormat(fmt), f"p{i}")  # type: ignore[arg-type]
        for x in batch
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_counts_match_what_decoding_finds(tmp_path: Path, fmt: str) -> None:
    data = generate(tmp_path, SMALL, format=fmt, progress=False)
    assert [p.name for p in data.left_paths] == [f"impressions-000.{fmt}", f"impressions-001.{fmt}"]
    for side in ("left", "right"):
        items = decode(data.paths(side), fmt)
        events = [x for x in items if isinstance(x, Event)]
        invalid = [x for x in items if isinstance(x, Invalid)]
        counts = data.counts[side]
        assert len(events) == counts.events
        assert len(invalid) == counts.malformed > 0
        assert len(Counter(invalid_kind(x.reason) for x in invalid)) == 4
        copies = Counter((e.key, e.ts, e.eid) for e in events)
        assert sum(n - 1 for n in copies.values()) == counts.duplicates > 0
        assert counts.intended_late > 0
    assert data.expected_pairs > 0


def invalid_kind(reason: str) -> str:
    return reason.split(":")[0]


def test_records_have_the_documented_fields(tmp_path: Path) -> None:
    data = generate(tmp_path, GeneratorConfig(impressions=200, keys=20), progress=False)
    imp = json.loads(data.left_paths[0].read_text().splitlines()[0])
    play = json.loads(data.right_paths[0].read_text().splitlines()[0])
    assert list(imp) == ["impression_id", "key", "user_id", "title_id", "ts", "row", "position"]
    assert list(play) == ["play_id", "key", "user_id", "title_id", "ts", "duration_ms"]
    assert imp["key"] == f"{imp['user_id']}:{imp['title_id']}"
    assert isinstance(imp["ts"], int)


def test_deterministic_by_seed(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", SMALL, progress=False)
    b = generate(tmp_path / "b", SMALL, progress=False)
    c = generate(tmp_path / "c", GeneratorConfig(**{**SMALL.__dict__, "seed": 1}), progress=False)
    for pa, pb, pc in zip(a.left_paths + a.right_paths, b.left_paths + b.right_paths,
                          c.left_paths + c.right_paths, strict=True):
        assert pa.read_bytes() == pb.read_bytes() != pc.read_bytes()


def test_disorder_is_bounded_and_plays_follow_impressions(tmp_path: Path) -> None:
    cfg = GeneratorConfig(impressions=3000, keys=300, late_fraction=0.0, duplicate_fraction=0.0,
                          orphan_rate=0.0, disorder_ms=1_000, window_ms=5_000)
    data = generate(tmp_path, cfg, progress=False)
    left = [x for x in decode(data.left_paths, "jsonl") if isinstance(x, Event)]
    right = [x for x in decode(data.right_paths, "jsonl") if isinstance(x, Event)]
    for events in (left, right):
        newest = events[0].ts
        for e in events:
            assert newest - e.ts <= cfg.disorder_ms
            newest = max(newest, e.ts)
    first_imp: dict[str, int] = {}
    for e in left:
        first_imp[e.key] = min(e.ts, first_imp.get(e.key, e.ts))
    assert all(first_imp[p.key] <= p.ts for p in right)


def test_avro_output_and_malformed_refusal(tmp_path: Path) -> None:
    data = generate(tmp_path, GeneratorConfig(impressions=300, keys=30), format="avro",
                    progress=False)
    events = decode(data.left_paths, "avro")
    assert len(events) == data.counts["left"].events
    assert all(isinstance(e, Event) for e in events)
    with pytest.raises(ConfigError, match="cannot be written as Avro"):
        generate(tmp_path / "x", SMALL, format="avro", progress=False)


@pytest.mark.parametrize(
    ("field", "value"),
    [("impressions", -1), ("keys", 0), ("play_rate", 1.5), ("orphan_rate", 1.0),
     ("zipf_s", -1.0), ("rate_per_s", 0.0), ("partitions", 0)],
)
def test_config_is_validated(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        GeneratorConfig(**{field: value})  # type: ignore[arg-type]


def test_progress_is_silent_off_a_terminal() -> None:
    stream = io.StringIO()
    with Progress(10, "x", stream=stream) as bar:
        bar.advance(10)
    assert stream.getvalue() == ""
    assert "100.0% 10/10" in bar.render()
