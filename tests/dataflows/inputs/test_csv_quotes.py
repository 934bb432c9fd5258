"""CSV quoting (issue 10, item 4): a stray quote costs its own line, never the
rest of the file; quoted values with line breaks still work."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflows.inputs import Invalid, SourceFormat, read_batches
from dataflows.inputs.csv_format import MAX_RECORD_LINES
from joins import Event, content_id

CSV = SourceFormat("csv")
HEADER = b"id,key,ts\n"


def read_all(path: Path, start: int = 0, size: int = 1000) -> list[Event | Invalid]:
    return [x for b, _ in read_batches(str(path), "left", CSV, "p", start, size) for x in b]


def rows(n: int, first: int = 0) -> list[bytes]:
    return [b"%d,k%d,%d" % (i, i, i) for i in range(first, first + n)]


def write(tmp_path: Path, lines: list[bytes], end: bytes = b"\n") -> Path:
    path = tmp_path / "in.csv"
    path.write_bytes(HEADER + end.join(lines) + end)
    return path


@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_a_stray_quote_costs_its_line_and_reading_goes_on(tmp_path: Path, end: bytes) -> None:
    stray = b'5,"k5,5'
    lines = [*rows(5), stray, *rows(500, 6)]
    path = write(tmp_path, lines, end)
    out = read_all(path)
    bad = [x for x in out if isinstance(x, Invalid)]
    assert len(bad) == 1
    assert bad[0].raw == stray
    assert bad[0].offset == len(HEADER) + 5 * len(end) + sum(map(len, rows(5)))
    assert bad[0].reason == (
        f"csv: a quote opened on this line is not closed within {MAX_RECORD_LINES} lines")
    events = [x for x in out if isinstance(x, Event)]
    assert [e.key for e in events] == [f"k{i}" for i in (*range(5), *range(6, 506))]


def test_a_quote_open_to_the_end_of_the_file(tmp_path: Path) -> None:
    stray = b'3,"k3,3'
    path = write(tmp_path, [*rows(3), stray, *rows(4, 4)])
    out = read_all(path)
    bad = [x for x in out if isinstance(x, Invalid)]
    assert [(x.raw, x.reason) for x in bad] == [
        (stray, "csv: a quote opened on this line is not closed before the end of the file")]
    assert [x.key for x in out if isinstance(x, Event)] == [f"k{i}" for i in (0, 1, 2, 4, 5, 6, 7)]
    last = write(tmp_path, [*rows(2), stray])
    assert [x.raw for x in read_all(last) if isinstance(x, Invalid)] == [stray]


def test_a_stray_quote_closed_by_a_later_one_still_costs_one_line(tmp_path: Path) -> None:
    """Strict quoting: text after a closing quote is an error, so a later quoted
    value cannot close the stray one into a record that swallows lines."""
    stray = b'1,"k1,1'
    path = write(tmp_path, [rows(1)[0], stray, b"2,k2,2", b'3,"k3",3', b"4,k4,4"])
    out = read_all(path)
    assert [x.raw for x in out if isinstance(x, Invalid)] == [stray]
    assert [x.key for x in out if isinstance(x, Event)] == ["k0", "k2", "k3", "k4"]


def test_quoted_values_with_line_breaks_are_one_record(tmp_path: Path) -> None:
    multi = b'1,"two\r\nlines, ""quoted""",1'
    path = write(tmp_path, [rows(1)[0], multi, b"2,k2,2"], b"\r\n")
    out = read_all(path)
    assert all(isinstance(x, Event) for x in out)
    assert [x.key for x in out] == ["k0", 'two\r\nlines, "quoted"', "k2"]  # type: ignore[union-attr]
    assert out[1].eid == content_id(multi)  # type: ignore[union-attr]
    longest = b'9,"' + b"\n".join([b"x"] * MAX_RECORD_LINES) + b'",9'
    path = write(tmp_path, [longest, b"2,k2,2"])
    out = read_all(path)
    assert [type(x) for x in out] == [Event, Event]
    assert out[0].eid == content_id(longest)  # type: ignore[union-attr]


def test_a_record_of_several_lines_with_the_wrong_width_costs_its_first_line(
    tmp_path: Path,
) -> None:
    broken = [b'1,"a', b'b",1,extra']
    path = write(tmp_path, [*broken, b"2,k2,2"])
    out = read_all(path)
    first, second, ok = out
    assert isinstance(first, Invalid)
    assert first.raw == broken[0]
    assert first.reason == "csv: the record from this line spans 2 lines and has 4 columns, not 3"
    assert isinstance(second, Invalid)  # the next line, read on its own
    assert second.raw == broken[1]
    assert isinstance(ok, Event)


@pytest.mark.parametrize("size", [1, 2, 7])
def test_resume_from_every_position_reads_the_rest(tmp_path: Path, size: int) -> None:
    lines = [*rows(3), b'3,"k3,3', *rows(3, 4), b'7,"a\nb",7', b"8,\xff,8", *rows(2, 9)]
    path = write(tmp_path, lines)
    everything = read_all(path)
    assert len(everything) == 11
    for batch, pos in read_batches(str(path), "left", CSV, "p", 0, size):
        assert read_all(path, start=pos) == everything[everything.index(batch[-1]) + 1 :]
