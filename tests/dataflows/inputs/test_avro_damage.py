"""Damaged Avro files (issue 10, item 3): one bad byte or sync marker costs its
block, one dead letter holding the block's exact bytes; reading resynchronises
at the next block."""

from __future__ import annotations

import io
from pathlib import Path

import fastavro
import pytest

from dataflows.inputs import RAW_LIMIT_BYTES, Invalid, SourceFormat, read_batches
from joins import Event

AVRO = SourceFormat("avro")
SCHEMA = fastavro.parse_schema({"type": "record", "name": "E", "fields": [
    {"name": "key", "type": "string"}, {"name": "ts", "type": "long"},
    {"name": "n", "type": "int"}]})
PER_BLOCK = 4


def avro_bytes(n: int, codec: str = "null") -> bytes:
    """``n`` records, ``PER_BLOCK`` to a block."""
    fo = io.BytesIO()
    writer = fastavro.write.Writer(fo, SCHEMA, codec=codec)
    for i in range(n):
        writer.write({"key": f"k{i}", "ts": 1000 + i, "n": i})
        if (i + 1) % PER_BLOCK == 0:
            writer.flush()
    writer.flush()
    return fo.getvalue()


def blocks(data: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each block, sync marker included, as fastavro frames them."""
    return [(b.offset, b.offset + b.size) for b in fastavro.block_reader(io.BytesIO(data))]


def read_all(path: Path, start: int = 0, size: int = 1000) -> list[Event | Invalid]:
    return [x for b, _ in read_batches(str(path), "left", AVRO, "p", start, size) for x in b]


def check_damage(
    path: Path, lost: set[int], dead: list[bytes], shifted: int = 0
) -> list[Invalid]:
    """Every record but those in ``lost`` is an event, at its own index (less
    ``shifted`` after the damage), and the dead letters hold exactly ``dead``."""
    out = read_all(path)
    events = [x for x in out if isinstance(x, Event)]
    bad = [x for x in out if isinstance(x, Invalid)]
    assert [e.record["n"] for e in events] == [i for i in range(40) if i not in lost]
    offsets = [x.offset for x in out]
    assert offsets == sorted(set(offsets))
    first_lost = min(lost)
    assert [e.offset for e in events] == [
        e.record["n"] - (shifted if e.record["n"] > first_lost else 0) for e in events]
    assert [x.raw for x in bad] == dead
    for x in bad:
        assert x.reason.startswith("avro: damaged block at byte ")
        assert x.avro_codec == "null"
        assert x.avro_schema is not None
    return bad


@pytest.fixture
def clean() -> bytes:
    return avro_bytes(40)


def test_a_corrupt_sync_marker_costs_its_block(tmp_path: Path, clean: bytes) -> None:
    start, end = blocks(clean)[3]
    data = bytearray(clean)
    data[end - 5] ^= 0xFF
    path = tmp_path / "in.avro"
    path.write_bytes(bytes(data))
    (bad,) = check_damage(path, set(range(12, 16)), [bytes(data[start:end])])
    assert bad.reason == (f"avro: damaged block at byte {start} (the sync marker is not where "
                          f"its size says the block ends); its header says 4 records; "
                          f"reading goes on at byte {end}")
    assert bad.offset == 12


def test_a_corrupt_byte_in_a_blocks_data_costs_that_block(tmp_path: Path, clean: bytes) -> None:
    start, end = blocks(clean)[5]
    data = bytearray(clean)
    data[start + 2] = 0x7F  # the first record's key length: -64 bytes
    path = tmp_path / "in.avro"
    path.write_bytes(bytes(data))
    (bad,) = check_damage(path, set(range(20, 24)), [bytes(data[start:end])])
    assert "its records do not decode" in bad.reason
    assert bad.reason.endswith("the block held 4 records")


def test_a_corrupt_record_count_costs_that_block(tmp_path: Path, clean: bytes) -> None:
    start, end = blocks(clean)[2]
    data = bytearray(clean)
    data[start] = 0x7E  # 63 records in a block of a few dozen bytes
    path = tmp_path / "in.avro"
    path.write_bytes(bytes(data))
    (bad,) = check_damage(path, set(range(8, 12)), [bytes(data[start:end])], shifted=3)
    assert "63 records cannot fit" in bad.reason


def test_garbage_between_blocks_is_cut_out_with_the_block_it_hides(
    tmp_path: Path, clean: bytes
) -> None:
    """The garbage hides where the next block starts: reading resumes after the
    next sync marker, and the dead letter holds the garbage and that block."""
    _, end = blocks(clean)[1]
    nxt_start, nxt_end = blocks(clean)[2]
    garbage = b"\x01\x02\x03garbage"
    path = tmp_path / "in.avro"
    path.write_bytes(clean[:end] + garbage + clean[end:])
    check_damage(path, set(range(8, 12)), [garbage + clean[nxt_start:nxt_end]], shifted=3)


def test_a_cut_off_file_costs_its_last_block(tmp_path: Path, clean: bytes) -> None:
    start, end = blocks(clean)[-1]
    path = tmp_path / "in.avro"
    path.write_bytes(clean[: end - 3])
    (bad,) = check_damage(path, set(range(36, 40)), [clean[start : end - 3]])
    assert "no sync marker follows" in bad.reason


def test_two_damaged_blocks_are_two_dead_letters(tmp_path: Path, clean: bytes) -> None:
    (s1, e1), (s2, e2) = blocks(clean)[1], blocks(clean)[7]
    data = bytearray(clean)
    data[e1 - 1] ^= 0x01
    data[e2 - 16] ^= 0x80
    path = tmp_path / "in.avro"
    path.write_bytes(bytes(data))
    check_damage(path, {*range(4, 8), *range(28, 32)}, [bytes(data[s1:e1]), bytes(data[s2:e2])])


@pytest.mark.parametrize("codec", ["deflate", "bzip2", "xz"])
def test_compressed_blocks_that_do_not_decompress(tmp_path: Path, codec: str) -> None:
    clean = avro_bytes(40, codec)
    start, end = blocks(clean)[4]
    data = bytearray(clean)
    for i in range(start + 2, end - 16):
        data[i] = 0x55  # the whole payload
    path = tmp_path / "in.avro"
    path.write_bytes(bytes(data))
    out = read_all(path)
    bad = [x for x in out if isinstance(x, Invalid)]
    assert [x.raw for x in bad] == [bytes(data[start:end])]
    assert bad[0].avro_codec == codec
    assert [x.record["n"] for x in out if isinstance(x, Event)] == [
        i for i in range(40) if not 16 <= i < 20]


def test_an_unreadable_header_makes_the_whole_file_one_dead_letter(
    tmp_path: Path, clean: bytes
) -> None:
    data = bytearray(clean)
    data[5:9] = b"\xff\xff\xff\xff"
    path = tmp_path / "in.avro"
    path.write_bytes(bytes(data))
    (bad,) = read_all(path)
    assert isinstance(bad, Invalid)
    assert bad.reason.startswith("avro: cannot read the file (the metadata map")
    assert bad.raw == bytes(data)
    assert read_all(path, start=1) == []


def test_a_codec_this_reader_lacks_is_named(tmp_path: Path) -> None:
    data = avro_bytes(3)
    path = tmp_path / "in.avro"
    path.write_bytes(data.replace(b"\x08null", b"\x08zzzz", 1))
    (bad,) = read_all(path)
    assert isinstance(bad, Invalid)
    assert "codec 'zzzz' is not supported here (supported: null, deflate, bzip2, xz)" in bad.reason


@pytest.mark.parametrize("size", [1, 3, 5])
def test_resume_from_every_position_reads_the_rest(
    tmp_path: Path, clean: bytes, size: int
) -> None:
    (_s1, e1), (s2, _e2) = blocks(clean)[2], blocks(clean)[6]
    data = bytearray(clean)
    data[e1 - 2] ^= 0x01
    data[s2 + 2] = 0x7F
    path = tmp_path / "in.avro"
    path.write_bytes(bytes(data))
    everything = read_all(path)
    assert len(everything) == 32 + 2
    for batch, pos in read_batches(str(path), "left", AVRO, "p", 0, size):
        assert read_all(path, start=pos) == everything[everything.index(batch[-1]) + 1 :]


def test_an_absurd_count_of_zero_size_records_is_damage_not_a_hang(tmp_path: Path) -> None:
    nulls = fastavro.parse_schema({"type": "record", "name": "N", "fields": [
        {"name": "x", "type": "null"}]})
    fo = io.BytesIO()
    fastavro.writer(fo, nulls, [{"x": None}] * 3)
    data = fo.getvalue()
    (start, end), = blocks(data)
    assert data[start : start + 2] == b"\x06\x00"  # 3 records in 0 bytes
    huge = b"\xfe\xff\xff\x7f"  # 134,217,727 records in 0 bytes
    path = tmp_path / "in.avro"
    path.write_bytes(data[:start] + huge + data[start + 1 :])
    (bad,) = read_all(path)
    assert isinstance(bad, Invalid)
    assert "134217727 records cannot fit in its 0 bytes" in bad.reason
    assert bad.raw == huge + data[start + 1 : end]


def test_damage_past_the_dead_letter_limit_is_cut_and_says_so(tmp_path: Path) -> None:
    """A damaged stretch with no sync marker after it runs to the end of the file:
    its dead letter keeps the first MiB and gives the full length."""
    clean = avro_bytes(8)
    start, _ = blocks(clean)[1]
    junk = bytes(range(256)) * (RAW_LIMIT_BYTES // 128)
    path = tmp_path / "in.avro"
    path.write_bytes(clean[:start] + b"\x01" + junk)
    out = read_all(path)
    bad = out[-1]
    assert isinstance(bad, Invalid)
    assert (bad.raw_bytes, bad.raw_truncated) == (1 + len(junk), True)
    assert bad.raw == (b"\x01" + junk)[:RAW_LIMIT_BYTES]
    assert [x.record["n"] for x in out if isinstance(x, Event)] == [0, 1, 2, 3]
