"""ShardSnapshotV1: round trip, pickle safety, identity and the manifest's refusal."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from joins import IntervalJoiner, JoinSpec, MemoryStore, PartitionMark
from recovery.errors import IncompatibleRecoveryError, RecoveryError, SnapshotDecodeError
from recovery.identity import JoinIdentity, format_ms
from recovery.layout import MANIFEST_NAME, init_recovery_dir, open_recovery_dir
from recovery.snapshot import (
    ShardSnapshotV1,
    checkpoint_ref,
    decode_snapshot,
    encode_snapshot,
    parse_ref,
)

SPEC = JoinSpec(lower_ms=0, upper_ms=30 * 60_000, how="left")
IDENTITY = JoinIdentity(SPEC, 32)


def joiner_state() -> dict[str, object]:
    joiner = IntervalJoiner(SPEC, MemoryStore(), ["left:0", "right:0"], lambda: 1_000)
    joiner.advance(
        [PartitionMark("left:0", 50_000, 1_000), PartitionMark("right:0", 70_000, 1_000)]
    )
    return joiner.to_state()


def snap(seq: int = 7, ckpt_seq: int = 5) -> ShardSnapshotV1:
    ref = checkpoint_ref("s0003-1", ckpt_seq, "0badcafe")
    return ShardSnapshotV1.create("s0003-1", seq, ref, joiner_state(), IDENTITY.fingerprint)


CALLED: list[str] = []


def side_effect(what: str) -> None:
    CALLED.append(what)


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (side_effect, ("pwned",))


def test_round_trip_through_pickle_keeps_every_field() -> None:
    original = snap()
    back = decode_snapshot(encode_snapshot(original))
    assert back == original
    assert back is not None
    assert back.joiner_state == joiner_state()
    assert back.watermark_ms == 45_000  # min(50_000, 70_000) - 5 s out-of-orderness
    assert back.entries == {"left": 0, "right": 0}
    assert back.checkpoint_seq == 5
    # Bytewax pickles with pickle.dumps itself: the value must survive that too.
    assert decode_snapshot(pickle.dumps(original, protocol=2)) == original


def test_snapshot_is_immutable_and_holds_no_live_state() -> None:
    state = joiner_state()
    s = ShardSnapshotV1.create("s1", 1, checkpoint_ref("s1", 1, "00000000"), state, "f")
    state["counters"]["pairs"] = 99  # type: ignore[index]
    assert s.joiner_state["counters"]["pairs"] == 0
    with pytest.raises(AttributeError):
        s.seq = 2  # type: ignore[misc]
    copy = s.joiner_state
    copy["counters"]["pairs"] = 5
    assert s.joiner_state["counters"]["pairs"] == 0
    assert {type(getattr(s, f)) for f in ("shard", "seq", "checkpoint", "joiner_json")} == {
        str,
        int,
    }


def test_decoder_refuses_foreign_globals_and_skips_other_steps() -> None:
    # A source's offset or a sink's position (plain data): not ours, skipped.
    assert decode_snapshot(pickle.dumps(12345)) is None
    assert decode_snapshot(pickle.dumps({"ShardSnapshotV1": [1, 2]})) is None
    assert decode_snapshot(None) is None  # a discard row
    # A pickle that would call a function is never executed.
    evil = pickle.dumps((Evil(), "ShardSnapshotV1"))
    pickle.loads(pickle.dumps(Evil()))  # noqa: S301  (the plain unpickler calls it ...)
    assert CALLED == ["pwned"]
    assert decode_snapshot(evil) is None  # ... the snapshot decoder never does
    assert CALLED == ["pwned"]
    # A snapshot wrapped in something else would hide its checkpoint: refused.
    with pytest.raises(SnapshotDecodeError, match="must return the ShardSnapshotV1 itself"):
        decode_snapshot(pickle.dumps(("x", snap())))
    # A class of ours that this build does not know: refused, never guessed.
    data = encode_snapshot(snap()).replace(b"ShardSnapshotV1", b"ShardSnapshotV9")
    with pytest.raises(SnapshotDecodeError, match="unknown snapshot class"):
        decode_snapshot(data)
    # Corrupt bytes.
    with pytest.raises(SnapshotDecodeError, match="corrupt"):
        decode_snapshot(encode_snapshot(snap())[:-9])


@pytest.mark.parametrize(
    "ref",
    ["../etc/000000000001-0badcafe", "/abs/000000000001-0badcafe", "s1/1-0badcafe",
     "s1/000000000001-XYZ", "s1/000000000001-0badcafe/..", "../000000000001-0badcafe"],
)
def test_references_never_leave_the_checkpoint_root(ref: str) -> None:
    with pytest.raises(SnapshotDecodeError, match="not a checkpoint reference"):
        parse_ref(ref)


def test_snapshot_validates_its_fields() -> None:
    with pytest.raises(SnapshotDecodeError, match="references"):
        ShardSnapshotV1("s1", 1, checkpoint_ref("s2", 1, "00000000"), "{}", "f")
    with pytest.raises(SnapshotDecodeError, match="seq"):
        ShardSnapshotV1("s1", 0, checkpoint_ref("s1", 1, "00000000"), "{}", "f")
    with pytest.raises(SnapshotDecodeError, match="shard name"):
        ShardSnapshotV1("a/b", 1, "a/000000000001-00000000", "{}", "f")
    with pytest.raises(SnapshotDecodeError, match="JSON"):
        ShardSnapshotV1.create("s1", 1, checkpoint_ref("s1", 1, "00000000"), {"x": object()}, "f")


def test_fingerprint_covers_spec_and_shard_count() -> None:
    same = JoinIdentity(JoinSpec(lower_ms=0, upper_ms=30 * 60_000, how="left"), 32)
    assert same.fingerprint == IDENTITY.fingerprint
    others = [
        JoinIdentity(SPEC, 64),
        JoinIdentity(JoinSpec(upper_ms=60_000, how="left"), 32),
        JoinIdentity(JoinSpec(upper_ms=30 * 60_000, how="inner"), 32),
        JoinIdentity(JoinSpec(upper_ms=30 * 60_000, allowed_lateness_ms=1), 32),
    ]
    assert len({o.fingerprint for o in others} | {IDENTITY.fingerprint}) == 5
    assert [format_ms(v) for v in (0, 250, 5_000, 1_800_000, 7_200_000, 1_500)] == [
        "0ms", "250ms", "5s", "30m", "2h", "1500ms",
    ]


def test_manifest_is_written_once_and_refuses_another_configuration(tmp_path: Path) -> None:
    rdir = tmp_path / "rec"
    layout = init_recovery_dir(rdir, IDENTITY, partitions=2)
    assert layout.needs_partitions
    assert layout.bytewax_init_command() == ["-m", "bytewax.recovery", str(rdir), "2"]
    assert layout.checkpoint_root.is_dir()
    recorded = json.loads((rdir / MANIFEST_NAME).read_text())
    assert recorded["shards"] == 32
    assert recorded["fingerprint"] == IDENTITY.fingerprint
    # Same identity: accepted; a different partition count is ignored (fixed at init).
    again = init_recovery_dir(rdir, IDENTITY, partitions=8)
    assert again.manifest.partitions == 2
    asked = JoinIdentity(JoinSpec(upper_ms=60 * 60_000, how="inner"), 64)
    with pytest.raises(IncompatibleRecoveryError) as info:
        init_recovery_dir(rdir, asked, partitions=2)
    message = str(info.value)
    assert "was initialised for shards=32, how=left, lower=0ms, upper=30m" in message
    assert "you asked for shards=64, how=inner, lower=0ms, upper=1h" in message
    assert "(differs in: shards, upper, how)" in message
    assert open_recovery_dir(rdir).identity == IDENTITY


def test_refuses_directories_it_did_not_create(tmp_path: Path) -> None:
    with pytest.raises(RecoveryError, match="not a streamjoin recovery directory"):
        open_recovery_dir(tmp_path)
    (tmp_path / "part-0.sqlite3").write_bytes(b"")
    with pytest.raises(RecoveryError, match=r"no run_manifest\.json"):
        init_recovery_dir(tmp_path, IDENTITY, partitions=1)
    (tmp_path / "part-0.sqlite3").unlink()
    (tmp_path / MANIFEST_NAME).write_text('{"version": 1, "shards": 3}')
    with pytest.raises(RecoveryError, match="malformed manifest"):
        open_recovery_dir(tmp_path)
