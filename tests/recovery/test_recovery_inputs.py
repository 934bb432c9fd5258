"""The input-file record of a recovery store and the resume check (recovery/inputs.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from joins import JoinSpec
from recovery.errors import IncompatibleRecoveryError, InputsChangedError, RecoveryError
from recovery.identity import JoinIdentity
from recovery.inputs import (
    HEAD_LIMIT_BYTES,
    InputFile,
    InputFiles,
    check_inputs,
    file_change,
    head_digest,
    input_changes,
    list_change,
    observe_file,
    observe_inputs,
)
from recovery.layout import MANIFEST_NAME, init_recovery_dir, open_recovery_dir, record_inputs

IDENTITY = JoinIdentity(JoinSpec(lower_ms=0, upper_ms=30 * 60_000, how="left"), 4)


def rec(size: int, head: bytes, path: str = "/in/a.jsonl") -> InputFile:
    return InputFile("left", path, size, len(head), head_digest(head))


# -- one file (pure) ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    recorded: InputFile
    now: InputFile | None
    expected: str | None  # a fragment of the message, None: may resume


CASES = [
    Case("unchanged", rec(10, b"0123456789"), rec(10, b"0123456789"), None),
    Case("grown: appended stream", rec(10, b"0123456789"), rec(25, b"0123456789"), None),
    Case("missing", rec(10, b"0123456789"), None, "left input /in/a.jsonl is missing"),
    Case(
        "truncated",
        rec(10, b"0123456789"),
        rec(4, b"0123"),
        "is shorter than recorded: 4 bytes now, 10 bytes recorded (truncated or replaced)",
    ),
    Case(
        "replaced, same size",
        rec(10, b"0123456789"),
        rec(10, b"0123456780"),
        "differs from the recorded file in its first 10 bytes (replaced or rewritten)",
    ),
    Case(
        "replaced by a longer file",
        rec(10, b"0123456789"),
        rec(99, b"x123456789"),
        "differs from the recorded file in its first 10 bytes",
    ),
    Case(
        "empty when recorded, now anything: grown",
        rec(0, b""),
        rec(5, b""),
        None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_file_change(case: Case) -> None:
    got = file_change(case.recorded, case.now)
    if case.expected is None:
        assert got is None
    else:
        assert got is not None
        assert case.expected in got


@pytest.mark.parametrize(
    ("recorded", "current", "gone", "expected"),
    [
        (["/a", "/b"], ["/a", "/b"], frozenset(), None),
        (["/a", "/b"], ["/b", "/a"], frozenset(), "the same files in another order: /b, /a"),
        (["/a", "/b"], ["/a"], frozenset({"/b"}), "no longer given: /b (missing)"),
        (["/a", "/b"], ["/a"], frozenset(), "no longer given: /b)"),
        (["/a"], ["/a", "/c"], frozenset(), "(1 file(s) recorded, 2 given; not recorded: /c)"),
    ],
)
def test_list_change(
    recorded: list[str], current: list[str], gone: frozenset[str], expected: str | None
) -> None:
    got = list_change("right", recorded, current, gone)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert got.startswith("the right input files are not the recorded list")
        assert expected in got


# -- real files ---------------------------------------------------------------------


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    a, b, c = tmp_path / "l0.jsonl", tmp_path / "l1.jsonl", tmp_path / "r0.jsonl"
    a.write_bytes(b'{"k": 1}\n' * 100)
    b.write_bytes(b'{"k": 2}\n' * 50)
    c.write_bytes(b'{"k": 3}\n' * 10)
    return a, b, c


def test_observed_head_is_bounded_and_growth_is_accepted(tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"a" * (HEAD_LIMIT_BYTES + 10))
    seen = observe_file("left", str(big))
    assert seen is not None
    assert (seen.size_bytes, seen.head_bytes) == (HEAD_LIMIT_BYTES + 10, HEAD_LIMIT_BYTES)
    assert observe_file("left", str(tmp_path / "nope")) is None
    # A small file recorded, then grown past the head limit: same head, accepted.
    small = tmp_path / "small.jsonl"
    small.write_bytes(b"line\n")
    recorded = observe_inputs({"left": [str(small)]})
    with small.open("ab") as f:
        f.write(b"z" * (2 * HEAD_LIMIT_BYTES))
    check_inputs(recorded, {"left": [str(small)]})
    # ... but not when its first bytes were rewritten.
    small.write_bytes(b"LINE\n" + b"z" * (2 * HEAD_LIMIT_BYTES))
    with pytest.raises(InputsChangedError, match=r"in its first 5 bytes"):
        check_inputs(recorded, {"left": [str(small)]})


def test_every_problem_is_named_in_one_line(tmp_path: Path) -> None:
    a, b, c = _files(tmp_path)
    paths = {"left": [str(a), str(b)], "right": [str(c)]}
    recorded = observe_inputs(paths)
    assert input_changes(recorded, paths) == []
    a.write_bytes(a.read_bytes()[:50])  # truncated
    c.write_bytes(b'{"k": 4}\n' * 10)  # replaced, same size
    b.unlink()  # gone (a glob no longer lists it)
    with pytest.raises(InputsChangedError) as info:
        check_inputs(recorded, {"left": [str(a)], "right": [str(c)]}, "/rec")
    message = str(info.value)
    assert isinstance(info.value, IncompatibleRecoveryError)  # the CLI's exit-2 path
    assert "\n" not in message
    assert message.startswith("the input files changed since the recovery directory /rec")
    assert f"no longer given: {b} (missing)" in message
    assert f"left input {a} is shorter than recorded: 50 bytes now, 900 bytes recorded" in message
    assert f"right input {c} differs from the recorded file in its first 90 bytes" in message
    assert "Resume with the recorded files (appending to them is fine)" in message


def test_another_order_is_refused_even_with_identical_files(tmp_path: Path) -> None:
    a, b, _ = _files(tmp_path)
    recorded = observe_inputs({"left": [str(a), str(b)]})
    problems = input_changes(recorded, {"left": [str(b), str(a)]})
    assert problems == [
        "the left input files are not the recorded list (2 file(s) recorded, 2 given; "
        f"the same files in another order: {b}, {a})"
    ]


# -- in the manifest ----------------------------------------------------------------


def test_manifest_records_inputs_at_first_use_and_on_request(tmp_path: Path) -> None:
    a, b, c = _files(tmp_path)
    paths = {"left": [str(a), str(b)], "right": [str(c)]}
    first = observe_inputs(paths)
    rdir = tmp_path / "rec"
    layout = init_recovery_dir(rdir, IDENTITY, partitions=2, inputs=first)
    on_disk = json.loads((rdir / MANIFEST_NAME).read_text())["inputs"]
    assert [(f["side"], f["path"]) for f in on_disk] == [
        ("left", str(a)), ("left", str(b)), ("right", str(c))
    ]
    assert open_recovery_dir(rdir).manifest.inputs == first
    # Later calls keep the recorded inputs; record_inputs replaces them.
    with a.open("ab") as f:
        f.write(b'{"k": 5}\n')
    grown = observe_inputs(paths)
    assert init_recovery_dir(rdir, IDENTITY, partitions=2, inputs=grown).manifest.inputs == first
    layout = record_inputs(layout, grown)
    assert open_recovery_dir(rdir).manifest.inputs == grown
    assert layout.manifest.inputs == grown
    # The record now holds the grown size: cutting back to the first size is refused.
    a.write_bytes(a.read_bytes()[:900])
    with pytest.raises(InputsChangedError, match="909 bytes recorded"):
        check_inputs(grown, paths)


def test_manifest_without_inputs_still_opens(tmp_path: Path) -> None:
    rdir = tmp_path / "rec"
    init_recovery_dir(rdir, IDENTITY, partitions=2)
    data = json.loads((rdir / MANIFEST_NAME).read_text())
    assert "inputs" not in data  # what stores created before the record look like
    assert open_recovery_dir(rdir).manifest.inputs is None
    data["inputs"] = [{"side": "left", "path": "/x"}]
    (rdir / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(RecoveryError, match="malformed manifest: not an input file record"):
        open_recovery_dir(rdir)
    assert InputFiles.from_json([]) == InputFiles(())
