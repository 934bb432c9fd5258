"""A shard's recovery snapshot: :class:`ShardSnapshotV1`, and safe decoding of it.

Bytewax pickles whatever ``snapshot()`` returns into its SQLite recovery
partitions (``snaps.ser_change``, ``pickle.dumps`` with the default protocol).
A shard's snapshot is therefore a small, frozen value holding only ``str`` and
``int`` fields: never an open handle and never the rows, which stay in a RocksDB
checkpoint that the value references by a path relative to the checkpoint root.

Pickle format (the contract, version 1): ``ShardSnapshotV1.__reduce__`` gives
``(ShardSnapshotV1, (shard, seq, checkpoint, joiner_json, fingerprint))``, so
decoding needs exactly one global, ``recovery.snapshot.ShardSnapshotV1``, and
runs the constructor's validation. A later layout is a new class
(``ShardSnapshotV2``) that the decoder learns to read; V1 stays readable.

:func:`decode_snapshot` reads such bytes with a restricted unpickler that
resolves no other global at all: a row of another step (a source's offsets, a
sink's position) yields ``None``; a row that names a class of this module it does
not know raises :class:`~recovery.errors.SnapshotDecodeError`.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from recovery.errors import SnapshotDecodeError

#: Shard names and checkpoint references are plain, portable path segments.
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_REF = re.compile(r"(?P<shard>[A-Za-z0-9_.-]{1,128})/(?P<seq>[0-9]{12})-(?P<tag>[0-9a-f]{8})")
_MODULE = "recovery.snapshot"
#: Cheap pre-filter: every pickle of one of our snapshot classes contains this.
MARKER = b"ShardSnapshotV"


def checkpoint_ref(shard: str, seq: int, tag: str) -> str:
    """``<shard>/<seq, 12 digits>-<tag, 8 hex>``: a checkpoint's path relative to
    the checkpoint root. Lexical order within a shard is sequence order."""
    ref = f"{shard}/{seq:012d}-{tag}"
    parse_ref(ref)
    return ref


def parse_ref(ref: str) -> tuple[str, int]:
    """``(shard, seq)`` of a checkpoint reference; refuses anything else (no
    absolute paths, no ``..``: a reference never leaves the checkpoint root)."""
    m = _REF.fullmatch(ref)
    if m is None or m["shard"] in (".", ".."):
        msg = f"not a checkpoint reference: {ref!r} (expected <shard>/<12 digits>-<8 hex>)"
        raise SnapshotDecodeError(msg)
    return m["shard"], int(m["seq"])


def check_shard_name(shard: str) -> str:
    """A shard name must be usable as one path segment."""
    if not isinstance(shard, str) or not _SEGMENT.fullmatch(shard) or shard in (".", ".."):
        msg = f"shard name {shard!r} must be 1-128 characters of A-Z a-z 0-9 _ . -"
        raise SnapshotDecodeError(msg)
    return shard


@dataclass(frozen=True, slots=True)
class ShardSnapshotV1:
    """One shard's recovery snapshot at the close of an epoch.

    - ``shard``: the shard's name (Bytewax's state key);
    - ``seq``: how many snapshots this shard has taken, over all executions
      (strictly increasing per shard; Bytewax's epoch is not visible to it);
    - ``checkpoint``: the RocksDB checkpoint holding the shard's rows, relative
      to the checkpoint root (see :func:`checkpoint_ref`);
    - ``joiner_json``: ``IntervalJoiner.to_state()`` (watermarks and counters)
      as canonical JSON, so that the value cannot alias live state;
    - ``fingerprint``: :attr:`recovery.identity.JoinIdentity.fingerprint` of the
      run that took it.
    """

    VERSION: ClassVar[int] = 1

    shard: str
    seq: int
    checkpoint: str
    joiner_json: str
    fingerprint: str

    def __post_init__(self) -> None:
        check_shard_name(self.shard)
        if not isinstance(self.seq, int) or isinstance(self.seq, bool) or self.seq < 1:
            msg = f"snapshot seq must be an integer >= 1, got {self.seq!r}"
            raise SnapshotDecodeError(msg)
        ref_shard, _ = parse_ref(self.checkpoint)
        if ref_shard != self.shard:
            msg = f"snapshot of shard {self.shard!r} references {self.checkpoint!r}"
            raise SnapshotDecodeError(msg)
        if not isinstance(self.joiner_json, str) or not isinstance(self.fingerprint, str):
            msg = "joiner_json and fingerprint must be strings"
            raise SnapshotDecodeError(msg)

    @classmethod
    def create(
        cls,
        shard: str,
        seq: int,
        checkpoint: str,
        joiner_state: dict[str, Any],
        fingerprint: str,
    ) -> ShardSnapshotV1:
        """A snapshot from the joiner's ``to_state()`` (copied into JSON now)."""
        try:
            text = json.dumps(joiner_state, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            msg = f"joiner state of shard {shard!r} is not JSON-able: {exc}"
            raise SnapshotDecodeError(msg) from exc
        return cls(shard, seq, checkpoint, text, fingerprint)

    @property
    def joiner_state(self) -> dict[str, Any]:
        """A fresh copy of the joiner's state, for ``IntervalJoiner(state=...)``."""
        state: dict[str, Any] = json.loads(self.joiner_json)
        return state

    @property
    def checkpoint_seq(self) -> int:
        """The sequence at which the referenced checkpoint was taken (``<= seq``)."""
        return parse_ref(self.checkpoint)[1]

    @property
    def watermark_ms(self) -> int:
        """The shard's join watermark ``W`` at the snapshot."""
        return int(self.joiner_state["watermark"]["watermark"])

    @property
    def entries(self) -> dict[str, int]:
        """Retained entries per side at the snapshot (from the joiner's counters)."""
        counters = self.joiner_state["counters"]
        return {side: int(counters[side]["retained"]) for side in ("left", "right")}

    def __reduce__(self) -> tuple[Any, tuple[str, int, str, str, str]]:
        return (ShardSnapshotV1, (self.shard, self.seq, self.checkpoint,
                                  self.joiner_json, self.fingerprint))


#: Every class the decoder may construct, by name within this module.
_ALLOWED: dict[str, type] = {"ShardSnapshotV1": ShardSnapshotV1}


class _Foreign(Exception):
    """A pickle that names a global outside this module: not a shard snapshot."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.resolved = False

    def find_class(self, module: str, name: str) -> Any:
        if module == _MODULE:
            cls = _ALLOWED.get(name)
            if cls is None:
                known = ", ".join(sorted(_ALLOWED))
                msg = f"unknown snapshot class {module}.{name} (this build reads {known})"
                raise SnapshotDecodeError(msg)
            self.resolved = True
            return cls
        foreign = f"{module}.{name}"
        raise _Foreign(foreign)


def encode_snapshot(snapshot: ShardSnapshotV1) -> bytes:
    """What Bytewax stores for ``snapshot`` (it calls ``pickle.dumps`` itself)."""
    return pickle.dumps(snapshot)


def decode_snapshot(data: bytes | None) -> ShardSnapshotV1 | None:
    """The shard snapshot in a recovery row, or ``None`` if the row is not one
    (another step's state, or a ``Discard`` row whose value is NULL).

    Resolves no global but this module's snapshot classes, so decoding a row
    never imports or calls anything else.
    """
    if data is None or MARKER not in data:
        return None
    unpickler = _RestrictedUnpickler(io.BytesIO(data))
    try:
        value = unpickler.load()
    except _Foreign:
        return None
    except SnapshotDecodeError:
        raise
    except Exception as exc:  # pickle raises many types on corrupt input
        msg = f"corrupt shard snapshot in a recovery row ({len(data)} bytes): {exc!r}"
        raise SnapshotDecodeError(msg) from exc
    if isinstance(value, ShardSnapshotV1):
        return value
    if unpickler.resolved:
        # A snapshot wrapped in something else would hide its checkpoint from
        # clean-up: refuse rather than guess.
        msg = (
            f"a recovery row holds a {type(value).__name__} containing a shard snapshot; "
            "snapshot() must return the ShardSnapshotV1 itself"
        )
        raise SnapshotDecodeError(msg)
    return None
