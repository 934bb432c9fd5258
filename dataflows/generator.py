"""Deterministic test data: impressions (left) and plays (right) with known defects.

:func:`generate` writes ``impressions.<ext>`` and ``plays.<ext>`` (or
``impressions-000.<ext>`` ... with several partitions per side) as JSON Lines,
CSV (with a header row) or Avro container files (schemas in
``dataflows/schemas/``), all a pure function of :class:`GeneratorConfig`.

The model:

- impressions are spread evenly over event time (``rate_per_s`` of them per
  second) with keys drawn Zipf(``zipf_s``) from ``keys`` keys
  ``f"{user_id}:{title_id}"`` (``zipf_s = 0``: uniform);
- each impression is followed by a play of the same key with probability
  ``play_rate``, ``0..window_ms`` later; ``orphan_rate`` of the plays have keys
  no impression has (they never match);
- impressions go to partition ``i % partitions``, plays ``j % partitions`` in
  time order; within a partition each event is shuffled by up to
  ``disorder_ms`` (bounded out-of-orderness: it arrives at most that far behind
  the partition's newest event);
- ``late_fraction`` of the events are placed ``5 s + disorder_ms + late_lag_ms``
  or more behind (late for a join with the default 5 s out-of-orderness, as
  long as partitions are read at similar event-time speeds: "intended" late);
- ``duplicate_fraction`` of the events are written twice (identical lines), the
  copy close to the original (an on-time copy, counted as a duplicate);
- ``malformed_fraction`` of each side's events, **per kind**, are added as broken
  records: bad JSON, missing ts, non-integer ts, missing key (CSV: wrong column
  count, empty ts, non-integer ts, empty key). Avro cannot express broken
  records (every datum matches its schema): asking for them is a ConfigError.

**Pairs grow with the square of a key's events inside one window.** With the
defaults (500k impressions at 1,000/s span 500 s, less than the 30 min window)
every key's events share one window, so the pair count is about
``0.15 * impressions**2 * sum(p_key**2)``. Measured with the defaults: uniform
keys 0.83 M pairs, Zipf 0.5 2.3 M, Zipf 0.8 76 M, Zipf 1.1 1.9 **billion**. The
default ``zipf_s`` is therefore a mild 0.5; :attr:`GeneratedDataset.expected_pairs`
reports the count for the configured window before any run. Datasets too short
for ``5 s + disorder_ms + late_lag_ms`` of event time get no intended-late events.
"""

from __future__ import annotations

import json
import random
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import fastavro

from dataflows.errors import ConfigError
from dataflows.progress import Progress

_SCHEMA_DIR = Path(__file__).parent / "schemas"
_TITLES_PER_USER = 5
_TITLE_SPREAD = 2003
#: The out-of-orderness the "intended late" placement is designed against (the default).
LATE_AGAINST_MS = 5_000
_IMP_COLUMNS = ("impression_id", "key", "user_id", "title_id", "ts", "row", "position")
_PLAY_COLUMNS = ("play_id", "key", "user_id", "title_id", "ts", "duration_ms")
FORMATS = ("jsonl", "csv", "avro")


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate; event times in epoch ms, durations in ms."""

    impressions: int = 500_000
    keys: int = 100_000
    seed: int = 42
    zipf_s: float = 0.5
    play_rate: float = 0.3
    orphan_rate: float = 0.05
    window_ms: int = 30 * 60 * 1000
    disorder_ms: int = 5_000
    late_fraction: float = 0.002
    duplicate_fraction: float = 0.001
    malformed_fraction: float = 0.0
    partitions: int = 1
    rate_per_s: float = 1000.0
    start_ms: int = 1_700_000_000_000
    late_lag_ms: int = 60_000

    def __post_init__(self) -> None:
        for name in ("impressions", "keys", "partitions", "window_ms", "disorder_ms",
                     "late_lag_ms", "seed", "start_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                msg = f"{name} must be an integer, got {value!r}"
                raise ConfigError(msg)
        for name, low in (("impressions", 0), ("keys", 1), ("partitions", 1),
                          ("window_ms", 0), ("disorder_ms", 0), ("late_lag_ms", 0)):
            if getattr(self, name) < low:
                msg = f"{name} must be >= {low}, got {getattr(self, name)}"
                raise ConfigError(msg)
        for name in ("play_rate", "late_fraction", "duplicate_fraction", "malformed_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                msg = f"{name} must be a fraction in [0, 1], got {value!r}"
                raise ConfigError(msg)
        if not 0.0 <= self.orphan_rate < 1.0:
            msg = f"orphan_rate must be in [0, 1), got {self.orphan_rate!r}"
            raise ConfigError(msg)
        if self.zipf_s < 0:
            msg = f"zipf_s must be >= 0 (0 = uniform), got {self.zipf_s!r}"
            raise ConfigError(msg)
        if self.rate_per_s <= 0:
            msg = f"rate_per_s must be > 0 events per second, got {self.rate_per_s!r}"
            raise ConfigError(msg)


@dataclass(frozen=True)
class SideCounts:
    """What was written for one side: ``events`` counts valid records (copies and
    intended-late ones included); ``malformed`` the broken ones besides them."""

    events: int
    duplicates: int
    malformed: int
    intended_late: int

    @property
    def records(self) -> int:
        return self.events + self.malformed


@dataclass(frozen=True)
class GeneratedDataset:
    """Paths and counts of a generated dataset."""

    out_dir: Path
    format: str
    left_paths: tuple[Path, ...]
    right_paths: tuple[Path, ...]
    counts: dict[str, SideCounts] = field(default_factory=dict)
    #: Distinct pairs among events that are neither intended-late nor copies, for
    #: a join ``0 <= play.ts - impression.ts <= window_ms``.
    expected_pairs: int = 0

    def paths(self, side: str) -> tuple[Path, ...]:
        return self.left_paths if side == "left" else self.right_paths


def _names(k: int) -> tuple[str, str, str]:
    user, slot = divmod(k, _TITLES_PER_USER)
    user_id = f"u{user}"
    title_id = f"t{slot * _TITLE_SPREAD + user % _TITLE_SPREAD}"
    return f"{user_id}:{title_id}", user_id, title_id


# One generated event before formatting: (ts, key index, id, extra1, extra2).
_Ev = tuple[int, int, int, int, int]


def _impressions(cfg: GeneratorConfig, rng: random.Random) -> list[_Ev]:
    n, keys = cfg.impressions, cfg.keys
    if cfg.zipf_s == 0:
        key_idx = [rng.randrange(keys) for _ in range(n)]
    else:
        order = list(range(keys))
        rng.shuffle(order)
        cum = list(accumulate((r + 1) ** -cfg.zipf_s for r in range(keys)))
        key_idx = rng.choices(order, cum_weights=cum, k=n)
    step = 1000.0 / cfg.rate_per_s
    start = cfg.start_ms
    rand = rng.random
    return [
        (start + int(i * step), key_idx[i], i, int(rand() * 50), int(rand() * 20))
        for i in range(n)
    ]


def _plays(cfg: GeneratorConfig, rng: random.Random, imps: list[_Ev]) -> list[_Ev]:
    rand, window, rate = rng.random, cfg.window_ms, cfg.play_rate
    plays = [(ts + int(rand() * (window + 1)), k) for ts, k, *_ in imps if rand() < rate]
    n_orphans = round(len(plays) * cfg.orphan_rate / (1.0 - cfg.orphan_rate))
    if n_orphans:
        lo = cfg.start_ms
        hi = (imps[-1][0] if imps else lo) + window
        plays.extend(
            (lo + int(rand() * (hi - lo + 1)), cfg.keys + rng.randrange(cfg.keys))
            for _ in range(n_orphans)
        )
    plays.sort()
    return [(ts, k, j, 1000 + int(rand() * 3_599_000), 0) for j, (ts, k) in enumerate(plays)]


def _format_line(side: str, ev: _Ev, fmt: str) -> Any:
    ts, k, seq, a, b = ev
    key, user_id, title_id = _names(k)
    if side == "left":
        if fmt == "jsonl":
            return (f'{{"impression_id":"i{seq}","key":"{key}","user_id":"{user_id}",'
                    f'"title_id":"{title_id}","ts":{ts},"row":{a},"position":{b}}}')
        if fmt == "csv":
            return f"i{seq},{key},{user_id},{title_id},{ts},{a},{b}"
        return {"impression_id": f"i{seq}", "key": key, "user_id": user_id,
                "title_id": title_id, "ts": ts, "row": a, "position": b}
    if fmt == "jsonl":
        return (f'{{"play_id":"p{seq}","key":"{key}","user_id":"{user_id}",'
                f'"title_id":"{title_id}","ts":{ts},"duration_ms":{a}}}')
    if fmt == "csv":
        return f"p{seq},{key},{user_id},{title_id},{ts},{a}"
    return {"play_id": f"p{seq}", "key": key, "user_id": user_id, "title_id": title_id,
            "ts": ts, "duration_ms": a}


def _malformed(line: str, kind: int, fmt: str) -> str:
    """Kind 0..3: bad syntax, missing ts, non-integer ts, missing key."""
    if fmt == "csv":
        cols = line.split(",")
        if kind == 0:
            return ",".join(cols[:3])
        cols[4 if kind in (1, 2) else 1] = "" if kind in (1, 3) else f"t{cols[4]}"
        return ",".join(cols)
    if kind == 0:
        return line[: len(line) // 2]
    rec = json.loads(line)
    if kind == 1:
        del rec["ts"]
    elif kind == 2:
        rec["ts"] = f"t{rec['ts']}"
    else:
        del rec["key"]
    return json.dumps(rec, separators=(",", ":"))


@dataclass
class _Placed:
    entries: list[tuple[float, int, Any]]
    late: set[int]
    duplicates: int
    malformed: int


def _place(side: str, events: list[_Ev], cfg: GeneratorConfig, fmt: str, p: int) -> _Placed:
    """Order one partition's events as they will be written, with its defects."""
    rng = random.Random(f"{cfg.seed}/{side}/{p}")  # noqa: S311 - test data, not secrets
    rand, n, disorder = rng.random, len(events), cfg.disorder_ms
    late_gap = LATE_AGAINST_MS + disorder + cfg.late_lag_ms
    max_ts = events[-1][0] if events else 0
    # Only events old enough that the stream goes on long enough behind them.
    eligible = bisect_right([e[0] for e in events], max_ts - late_gap)
    n_late = min(round(cfg.late_fraction * n), eligible)
    late = set(rng.sample(range(eligible), n_late)) if n_late else set()
    n_dup = min(round(cfg.duplicate_fraction * n), n - n_late)
    dup_pool = [i for i in range(n) if i not in late] if late else range(n)
    dups = rng.sample(dup_pool, n_dup) if n_dup else []
    entries: list[tuple[float, int, Any]] = []
    for i, ev in enumerate(events):
        ts = ev[0]
        key = ts + late_gap + rand() * cfg.late_lag_ms if i in late else ts + rand() * disorder
        entries.append((key, i, _format_line(side, ev, fmt)))
    for i in dups:
        ts = events[i][0]
        entries.append((ts + rand() * disorder, n + len(entries), entries[i][2]))
    n_bad = round(cfg.malformed_fraction * n) if n else 0
    for kind in range(4 if n_bad else 0):
        for _ in range(n_bad):
            i = rng.randrange(n)
            line = _format_line(side, events[i], fmt)
            entries.append((events[i][0] + rand() * disorder, n + len(entries),
                            _malformed(line, kind, fmt)))
    entries.sort(key=lambda e: (e[0], e[1]))
    return _Placed(entries, late, n_dup, 4 * n_bad)


def _pairs(imps: list[_Ev], plays: list[_Ev], skip: dict[str, set[int]], window: int) -> int:
    by_key: dict[int, list[int]] = {}
    for ev in imps:
        if ev[2] not in skip["left"]:
            by_key.setdefault(ev[1], []).append(ev[0])
    total = 0
    for ev in plays:
        times = by_key.get(ev[1])
        if times and ev[2] not in skip["right"]:
            total += bisect_right(times, ev[0]) - bisect_left(times, ev[0] - window)
    return total


def generate(
    out_dir: str | Path,
    cfg: GeneratorConfig | None = None,
    format: str = "jsonl",
    progress: bool = True,
) -> GeneratedDataset:
    """Write the dataset of ``cfg`` into ``out_dir`` (created) and describe it."""
    cfg = cfg if cfg is not None else GeneratorConfig()
    if format not in FORMATS:
        msg = f"unknown output format {format!r}: expected one of {', '.join(FORMATS)}"
        raise ConfigError(msg)
    if format == "avro" and cfg.malformed_fraction > 0:
        msg = (
            f"malformed_fraction={cfg.malformed_fraction} cannot be written as Avro (every "
            "datum must match its schema): use jsonl or csv, or malformed_fraction=0"
        )
        raise ConfigError(msg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)  # noqa: S311 - test data, not secrets
    imps = _impressions(cfg, rng)
    plays = _plays(cfg, rng, imps)
    sides = {"left": ("impressions", imps), "right": ("plays", plays)}
    total = sum(len(evs) for _, evs in sides.values())
    paths: dict[str, list[Path]] = {"left": [], "right": []}
    counts: dict[str, SideCounts] = {}
    skipped: dict[str, set[int]] = {"left": set(), "right": set()}
    with Progress(total, f"generate {out}", enabled=progress) as bar:
        for side, (stem, events) in sides.items():
            parts = cfg.partitions
            dup_n = bad_n = late_n = 0
            for p in range(parts):
                mine = events[p::parts]
                placed = _place(side, mine, cfg, format, p)
                skipped[side].update(mine[i][2] for i in placed.late)
                name = f"{stem}.{format}" if parts == 1 else f"{stem}-{p:03d}.{format}"
                path = out / name
                _write(path, side, format, [e[2] for e in placed.entries])
                paths[side].append(path)
                dup_n += placed.duplicates
                bad_n += placed.malformed
                late_n += len(placed.late)
                bar.advance(len(mine))
            counts[side] = SideCounts(len(events) + dup_n, dup_n, bad_n, late_n)
    return GeneratedDataset(
        out_dir=out,
        format=format,
        left_paths=tuple(paths["left"]),
        right_paths=tuple(paths["right"]),
        counts=counts,
        expected_pairs=_pairs(imps, plays, skipped, cfg.window_ms),
    )


def _write(path: Path, side: str, fmt: str, payloads: list[Any]) -> None:
    if fmt == "avro":
        name = "impression.avsc" if side == "left" else "play.avsc"
        schema = fastavro.parse_schema(json.loads((_SCHEMA_DIR / name).read_text()))
        with path.open("wb") as fo:
            fastavro.writer(fo, schema, payloads, codec="deflate")
        return
    lines = payloads
    if fmt == "csv":
        header = ",".join(_IMP_COLUMNS if side == "left" else _PLAY_COLUMNS)
        lines = [header, *payloads]
    with path.open("w", encoding="utf-8", newline="") as fo:
        fo.write("\n".join(lines))
        if lines:
            fo.write("\n")
