"""Fuzz (issue 10, "done when"): seeded streams of every input format mix valid
records, valid-but-unusual ones and injected malformed records; the decoders
must not crash, find exactly the injected dead letters with their exact bytes,
and decode exactly the valid events. One case runs through the CLI and
``streamjoin validate``.

Each stream is built with its oracle: the events it holds (key, time, record,
content id) and the bytes of each dead letter, in file order. The oracle is the
documented rules (``README.md``, "Inputs and dead letters") written out again
here, not the decoders.
"""

from __future__ import annotations

import base64
import io
import json
import random
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest

from dataflows.inputs import Invalid, SourceFormat, read_batches
from dataflows.outputs import raw_bytes_of, read_rows
from joins import Event, content_id

MAX_TS = 2**61


@dataclass
class Stream:
    """A file's bytes, the events it holds and the bytes of its dead letters."""

    data: bytearray = field(default_factory=bytearray)
    #: (key, ts in ms, record, eid) of every valid event, in file order
    events: list[tuple[str, int, dict[str, Any], bytes]] = field(default_factory=list)
    dead: list[bytes] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)


# -- JSON Lines -------------------------------------------------------------------

_TEXT = "abcxyz019 _-|,:\"\\/\t\n\x00\x7féü東京😀"


def _text(rng: random.Random, lo: int = 1, hi: int = 8) -> str:
    return "".join(rng.choice(_TEXT) for _ in range(rng.randint(lo, hi)))


def _key(rng: random.Random) -> str | int:
    return rng.choice([f"k{rng.randrange(20)}", rng.randrange(-3, 20), _text(rng).replace(
        "\x00", "n"), "ü" * rng.randint(1, 3)])


def _jsonl_valid(rng: random.Random, s: Stream, end: bytes) -> None:
    key, ms = _key(rng), rng.randrange(1_600_000_000_000, 1_600_000_100_000)
    ts: Any = rng.choice([ms, str(ms), float(ms)])
    rec: dict[str, Any] = {"key": key, "ts": ts}
    for _ in range(rng.randrange(4)):
        rec[_text(rng)] = rng.choice([None, True, 1.5, -7, _text(rng), [1, {"a": [None]}],
                                      {"deep": {"er": _text(rng)}}])
    text = json.dumps(rec, ensure_ascii=rng.random() < 0.5,
                      separators=rng.choice([(",", ":"), (", ", ": ")]))
    line = text.encode()
    if rng.random() < 0.1:
        line = b" \t" + line + b" "
    if rng.random() < 0.1:
        line = b"\xef\xbb\xbf" + line  # a byte-order mark at the line's start
        s.kinds.add("bom")
    s.data += line + end
    s.events.append((str(key), ms, json.loads(text), content_id(line)))


_JSONL_BAD: list[tuple[str, Any]] = [
    ("cut", lambda rng: b'{"key":"k1","ts":1' + rng.choice([b"", b",", b', "x":'])),
    ("null", lambda rng: b"null"),
    ("bool", lambda rng: rng.choice([b"true", b"false"])),
    ("number", lambda rng: rng.choice([b"0", b"-1.5e3", b"12"])),
    ("string", lambda rng: b'"' + _text(rng).encode("unicode_escape") + b'"'),
    ("array", lambda rng: b'[{"key":"k","ts":1}]'),
    ("no ts", lambda rng: b'{"key":"k"}'),
    ("no key", lambda rng: b'{"ts":5}'),
    ("bad ts", lambda rng: rng.choice([b'{"key":"k","ts":"abc"}', b'{"key":"k","ts":1.5}',
                                       b'{"key":"k","ts":true}', b'{"key":"k","ts":null}'])),
    ("bad key", lambda rng: rng.choice([b'{"key":"","ts":1}', b'{"key":null,"ts":1}',
                                        b'{"key":2.5,"ts":1}', b'{"key":{},"ts":1}'])),
    ("nul key", lambda rng: b'{"key":"a\\u0000b","ts":1}'),
    ("surrogate key", lambda rng: b'{"key":"\\udc00","ts":1}'),
    ("range", lambda rng: b'{"key":"k","ts":%d}' % (MAX_TS + 1)),
    ("nan", lambda rng: b'{"key":"k","ts":1,"x":NaN}'),
    ("utf8", lambda rng: b'{"key":"\xff\xfe","ts":1}'),
    ("form feed", lambda rng: b"\x0c"),
    ("extra", lambda rng: b'{"key":"k","ts":1} x'),
]


def jsonl_stream(rng: random.Random, n: int) -> Stream:
    s = Stream()
    for _ in range(n):
        end = rng.choice([b"\n", b"\r\n"])
        r = rng.random()
        if r < 0.65:
            _jsonl_valid(rng, s, end)
        elif r < 0.7:
            s.data += rng.choice([b"", b"  ", b"\t \r"]) + end  # blank: not a record
        else:
            kind, make = rng.choice(_JSONL_BAD)
            line = make(rng)
            s.kinds.add(kind)
            s.data += line + end
            s.dead.append(line)
    if rng.random() < 0.5 and s.data.endswith(b"\n"):
        s.data = s.data.rstrip(b"\r\n")  # no newline after the last line
    return s


# -- CSV --------------------------------------------------------------------------

def _csv_field(rng: random.Random) -> tuple[str, str]:
    """(value, as written): quoted values never start with a quote or a comma,
    so a stray quote cannot close on one and go on (see csv_format)."""
    value = rng.choice("abcxyzé東") + "".join(
        rng.choice('abc ,"\n\r\né') for _ in range(rng.randrange(6)))
    value = value.replace("\r", "\r\n") if "\r" in value else value
    if any(c in value for c in ',"\r\n') or rng.random() < 0.2:
        return value, '"' + value.replace('"', '""') + '"'
    return value, value


def csv_stream(rng: random.Random, n: int) -> Stream:
    s = Stream()
    s.data += b"id,key,ts,note\r\n" if rng.random() < 0.5 else b"id,key,ts,note\n"
    for i in range(n):
        end = rng.choice(["\n", "\r\n"])
        r = rng.random()
        key = f"k{rng.randrange(20)}"
        ms = rng.randrange(1_600_000_000_000, 1_600_000_100_000)
        if r < 0.65:
            note, written = _csv_field(rng)
            kq, kw = (key, f'"{key}"') if rng.random() < 0.2 else (key, key)
            line = f"{i},{kw},{ms},{written}".encode()
            s.data += line + end.encode()
            s.events.append((kq, ms, {"id": str(i), "key": kq, "ts": str(ms), "note": note},
                             content_id(line)))
            continue
        if r < 0.68:
            s.data += end.encode()  # blank
            continue
        kind = rng.choice(["width", "empty key", "empty ts", "bad ts", "stray quote",
                           "after quote", "utf8", "cr"])
        line = {
            "width": f"{i},{key},{ms}".encode(),
            "empty key": f"{i},,{ms},x".encode(),
            "empty ts": f"{i},{key},,x".encode(),
            "bad ts": f"{i},{key},{ms}.5,x".encode(),
            "stray quote": f'{i},"{key},{ms},x'.encode(),
            "after quote": f'{i},"{key}"x,{ms},x'.encode(),
            "utf8": f"{i},{key},{ms},".encode() + b"\xff\xc3",
            "cr": f"{i},{key}\r1,{ms},x".encode(),
        }[kind]
        s.kinds.add(kind)
        s.data += line + end.encode()
        s.dead.append(line)
    return s


# -- Avro -------------------------------------------------------------------------

def avro_schema(unit: str) -> dict[str, Any]:
    return {"type": "record", "name": "Fuzz", "namespace": "t", "fields": [
        {"name": "key", "type": ["null", "string", "long"]},
        {"name": "ts", "type": ["null", {"type": "long", "logicalType": f"timestamp-{unit}"}]},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12,
                                   "scale": 3}},
        {"name": "cents", "type": ["null", {"type": "fixed", "name": "Cents", "size": 6,
                                            "logicalType": "decimal", "precision": 12,
                                            "scale": 2}]},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "tod", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "blob", "type": "bytes"},
        {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
        {"name": "attrs", "type": {"type": "map", "values": {
            "type": "array", "items": ["null", "long", "bytes"]}}},
        {"name": "inner", "type": ["null", {"type": "record", "name": "Inner", "fields": [
            {"name": "x", "type": "double"}, {"name": "h", "type": "Hash"}]}]},
    ]}


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _dec(unscaled: int, scale: int) -> tuple[Decimal, str]:
    d = Decimal(unscaled).scaleb(-scale, Context(prec=50))
    return d, format(d, "f")


def _avro_record(rng: random.Random, unit: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the datum to write, the record the decoder must give)."""
    per_ms = 1000 if unit == "micros" else 1
    ms = rng.randrange(1_600_000_000_000, 1_600_000_100_000)
    price, price_text = _dec(rng.randrange(-(10**11), 10**11), 3)
    cents = _dec(rng.randrange(-(10**11), 10**11), 2) if rng.random() < 0.7 else None
    blob, hsh = rng.randbytes(rng.randrange(5)), rng.randbytes(4)
    attrs = {_text(rng): [rng.choice([None, rng.randrange(-5, 5), rng.randbytes(2)])
                          for _ in range(rng.randrange(3))] for _ in range(rng.randrange(3))}
    inner = {"x": rng.uniform(-1e6, 1e6), "h": rng.randbytes(4)} if rng.random() < 0.5 else None
    datum = {
        "key": rng.choice([f"k{rng.randrange(20)}", rng.randrange(20)]),
        "ts": ms * per_ms + rng.randrange(per_ms), "price": price,
        "cents": None if cents is None else cents[0],
        "id": str(uuid.UUID(int=rng.getrandbits(128))),
        "day": rng.randrange(-1000, 30000), "tod": rng.randrange(86_400_000_000), "blob": blob,
        "hash": hsh, "color": rng.choice(["RED", "GREEN"]), "attrs": attrs, "inner": inner,
    }
    expected = {
        **datum, "price": price_text, "cents": None if cents is None else cents[1],
        "blob": _b64(blob), "hash": _b64(hsh),
        "attrs": {k: [_b64(v) if isinstance(v, bytes) else v for v in vs]
                  for k, vs in attrs.items()},
        "inner": None if inner is None else {"x": inner["x"], "h": _b64(inner["h"])},
    }
    return datum, expected


def _varint_end(data: bytes | bytearray, pos: int) -> int:
    while data[pos] & 0x80:
        pos += 1
    return pos + 1


def avro_stream(rng: random.Random, n: int) -> Stream:
    unit = rng.choice(["millis", "micros"])
    codec = rng.choice(["null", "deflate"])
    schema = fastavro.parse_schema(avro_schema(unit))
    fo = io.BytesIO()
    writer = fastavro.write.Writer(fo, schema, codec=codec)
    per_ms = 1000 if unit == "micros" else 1
    # per block: (oracle items in order), each ("event", tuple) or ("dead", bytes)
    blocks: list[list[tuple[str, Any]]] = [[]]
    for _ in range(n):
        datum, expected = _avro_record(rng, unit)
        bad = rng.random() < 0.08
        if bad:
            datum = {**datum, **rng.choice([{"key": None}, {"key": ""}, {"ts": None}])}
        writer.write(datum)
        if bad:
            raw = io.BytesIO()
            fastavro.schemaless_writer(raw, schema, datum)
            blocks[-1].append(("dead", raw.getvalue()))
        else:
            canon = json.dumps(expected, sort_keys=True, separators=(",", ":"))
            blocks[-1].append(("event", (str(expected["key"]), expected["ts"] // per_ms,
                                         expected, content_id(canon.encode()))))
        if rng.random() < 0.15:
            writer.flush()
            blocks.append([])
    writer.flush()
    data = bytearray(fo.getvalue())
    extents = [(b.offset, b.offset + b.size) for b in fastavro.block_reader(io.BytesIO(data))]
    blocks = [b for b in blocks if b]
    assert len(extents) == len(blocks)
    s = Stream(kinds={f"avro {unit} {codec}"})
    damaged: set[int] = set()
    for i in range(0, len(blocks), 2):  # never two neighbours: one dead letter each
        if rng.random() < 0.2:
            start, end = extents[i]
            kind = rng.choice(["sync", "count", "data"])
            data_start = _varint_end(data, _varint_end(data, start))
            if kind == "sync":
                data[end - 1 - rng.randrange(16)] ^= 1 << rng.randrange(8)
            elif kind == "count":
                data[start] = 0x7E  # 63 records: more than the block can hold
                assert _varint_end(data, start) == start + 1
                assert len(blocks[i]) < 63
            elif codec == "null":
                data[data_start] = 0x7F  # the key's union branch: -64
            else:
                data[data_start : end - 16] = b"\x55" * (end - 16 - data_start)
            damaged.add(i)
            s.kinds.add(f"block {kind}")
    for i, items in enumerate(blocks):
        if i in damaged:
            start, end = extents[i]
            s.dead.append(bytes(data[start:end]))
            continue
        for what, value in items:
            if what == "dead":
                s.dead.append(value)
                s.kinds.add("avro record")
            else:
                s.events.append(value)
    s.data = data
    return s


BUILDERS = {"jsonl": jsonl_stream, "csv": csv_stream, "avro": avro_stream}


def decode(path: Path, fmt: SourceFormat, start: int = 0, size: int = 1000
           ) -> list[tuple[list[Event | Invalid], int]]:
    return list(read_batches(str(path), "left", fmt, "p", start, size))


def check(stream: Stream, items: list[Event | Invalid]) -> None:
    """The decoded ``items`` are exactly the stream's events and dead letters."""
    events = [x for x in items if isinstance(x, Event)]
    dead = [x for x in items if isinstance(x, Invalid)]
    assert len(dead) == len(stream.dead), [x.reason for x in dead]
    for got, raw in zip(dead, stream.dead, strict=True):
        assert got.raw == raw, got.reason
    assert [(e.key, e.ts, e.record, e.eid) for e in events] == stream.events
    offsets = [x.offset for x in items]
    assert offsets == sorted(set(offsets))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "avro"])
@pytest.mark.parametrize("seed", range(8))
def test_decoders_account_for_every_injected_record(
    tmp_path: Path, fmt: str, seed: int
) -> None:
    rng = random.Random(f"{fmt}/{seed}")
    stream = BUILDERS[fmt](rng, 250)
    path = tmp_path / f"in.{fmt}"
    path.write_bytes(bytes(stream.data))
    source = SourceFormat(fmt)  # type: ignore[arg-type]
    size = rng.choice([1, 7, 64, 1000])
    batches = decode(path, source, size=size)
    items = [x for batch, _ in batches for x in batch]
    check(stream, items)
    # a resume from any batch's position reads exactly the rest
    at = rng.randrange(len(batches))
    done = sum(len(b) for b, _ in batches[: at + 1])
    rest = [x for batch, _ in decode(path, source, batches[at][1], size) for x in batch]
    assert rest == items[done:]


def test_the_fuzz_covers_every_kind(tmp_path: Path) -> None:
    """The seeds above inject every kind of malformed record at least once."""
    kinds: dict[str, set[str]] = {}
    for fmt, build in BUILDERS.items():
        kinds[fmt] = set()
        for seed in range(8):
            kinds[fmt] |= build(random.Random(f"{fmt}/{seed}"), 250).kinds
    assert {k for k, _ in _JSONL_BAD} <= kinds["jsonl"]
    assert {"width", "empty key", "empty ts", "bad ts", "stray quote", "after quote", "utf8",
            "cr"} <= kinds["csv"]
    assert {"block sync", "block count", "block data", "avro record"} <= kinds["avro"]
    files = [k.split() for k in kinds["avro"] if k.startswith(("avro millis", "avro micros"))]
    assert {unit for _, unit, _ in files} == {"millis", "micros"}
    assert {codec for _, _, codec in files} == {"null", "deflate"}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "avro"])
def test_fuzzed_inputs_through_the_cli_validate_exactly(tmp_path: Path, fmt: str) -> None:
    streams = {side: BUILDERS[fmt](random.Random(f"cli/{fmt}/{side}"), 400)
               for side in ("left", "right")}
    for side, stream in streams.items():
        (tmp_path / f"{side}.{fmt}").write_bytes(bytes(stream.data))
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "dataflows.cli", "run", "--left", str(tmp_path / f"left.{fmt}"),
         "--right", str(tmp_path / f"right.{fmt}"), "--format", fmt, "--how", "full",
         "--upper", "20s", "--lower=-20s", "--shards", "4", "--batch-size", "37",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "run.json").read_text())
    for side, stream in streams.items():
        assert summary["counters"]["invalid"][side] == len(stream.dead)
        assert summary["counters"][side]["events_in"] == len(stream.events)
        rows = sorted((r for r in read_rows(out / "invalid") if r["side"] == side),
                      key=lambda r: r["offset"])
        assert [raw_bytes_of(r) for r in rows] == stream.dead
    check_run = subprocess.run(
        [sys.executable, "-m", "dataflows.cli", "validate", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert check_run.returncode == 0, check_run.stdout + check_run.stderr
