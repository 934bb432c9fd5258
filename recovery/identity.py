"""What a recovery directory is valid for: :class:`JoinIdentity`.

State written under one join configuration or shard count is wrong under
another (a different interval evicts differently; a different shard count puts a
key in another shard). The identity is the :class:`~joins.spec.JoinSpec` plus
the shard count; its fingerprint goes into every
:class:`~recovery.snapshot.ShardSnapshotV1` and into ``run_manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from joins.spec import JoinSpec
from recovery.errors import RecoveryError

#: Bumped if the fingerprint's input changes shape (never silently).
IDENTITY_VERSION = 1

_UNITS = (("h", 3_600_000), ("m", 60_000), ("s", 1_000))


def format_ms(ms: int) -> str:
    """A duration as the CLI spells it: ``30m``, ``5s``, ``1500ms``, ``0ms``."""
    for unit, size in _UNITS:
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True, slots=True)
class JoinIdentity:
    """The join configuration and shard count a recovery store belongs to."""

    spec: JoinSpec
    shards: int

    def __post_init__(self) -> None:
        if not isinstance(self.shards, int) or isinstance(self.shards, bool) or self.shards <= 0:
            msg = f"shards must be a positive integer, got {self.shards!r}"
            raise RecoveryError(msg)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able copy: ``{"shards": int, "spec": {...JoinSpec fields...}}``."""
        return {"shards": self.shards, "spec": asdict(self.spec)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JoinIdentity:
        """Inverse of :meth:`to_json`."""
        try:
            return cls(JoinSpec(**data["spec"]), int(data["shards"]))
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"not a join identity: {data!r} ({exc})"
            raise RecoveryError(msg) from exc

    @property
    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over the canonical JSON of :meth:`to_json`."""
        canonical = json.dumps(
            {"v": IDENTITY_VERSION, **self.to_json()}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def describe(self) -> str:
        """``shards=32, how=left, lower=0ms, upper=30m, ...``: for error messages."""
        s = self.spec
        return (
            f"shards={self.shards}, how={s.how}, lower={format_ms(s.lower_ms)}, "
            f"upper={format_ms(s.upper_ms)}, "
            f"max_out_of_orderness={format_ms(s.max_out_of_orderness_ms)}, "
            f"allowed_lateness={format_ms(s.allowed_lateness_ms)}, "
            f"idle_timeout={format_ms(s.idle_timeout_ms)}"
        )

    def differences(self, other: JoinIdentity) -> list[str]:
        """Names of the parameters that differ (``shards``, ``upper``, ...)."""
        out = ["shards"] if self.shards != other.shards else []
        mine, theirs = asdict(self.spec), asdict(other.spec)
        out.extend(k.removesuffix("_ms") for k in mine if mine[k] != theirs[k])
        return out
