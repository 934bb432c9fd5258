"""librdkafka settings (security, SASL, timeouts ...) of the Kafka clients.

They come from a config file's ``[kafka]`` section (:meth:`KafkaSettings.from_section`,
values may be strings, numbers or booleans) or from ``--kafka-config KEY=VALUE``
flags (:meth:`KafkaSettings.from_pairs`); flags override the file
(:meth:`KafkaSettings.merged`). Keys are librdkafka's property names
(``security.protocol``, ``sasl.mechanism``, ``sasl.username`` ...); an unknown
one is refused when a client is made (:mod:`dataflows.kafka.clients`).

**Secrets are never shown**: ``repr()``, :meth:`KafkaSettings.redacted` and
every error message replace the value of any key that names a password, secret,
token, JAAS config, private key or registry credentials with ``***``.

Some properties are the service's own business and are refused here:
``bootstrap.servers`` (the ``kafka://`` URL says it), ``transactional.id`` (one
per output shard, made by the Kafka sink), ``enable.auto.commit`` and
``enable.partition.eof`` (the source assigns partitions itself and commits
nothing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dataflows.errors import ConfigError

_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_SECRET = re.compile(
    r"password|secret|token|jaas|credentials|user\.info|oauthbearer\.config|(^|\.)key(\.pem)?$",
    re.IGNORECASE,
)
RESERVED: dict[str, str] = {
    "bootstrap.servers": "the brokers come from the kafka://HOST:PORT/TOPIC URL",
    "transactional.id": "the Kafka sink makes one per output shard",
    "enable.auto.commit": "the source assigns partitions and keeps offsets in its snapshots",
    "enable.partition.eof": "the source needs end-of-partition events to judge idleness",
}
REDACTED = "***"


def is_secret(key: str) -> bool:
    """Whether ``key``'s value must never be logged."""
    return bool(_SECRET.search(key))


def _text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    shown = REDACTED if is_secret(key) else repr(value)
    msg = f"Kafka setting {key!r} must be a string, number or boolean, got {shown}"
    raise ConfigError(msg)


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        msg = (f"Kafka setting name {key!r} is not a librdkafka property name "
               "(lower-case words joined by dots, e.g. security.protocol)")
        raise ConfigError(msg)
    if key in RESERVED:
        msg = f"Kafka setting {key!r} cannot be set: {RESERVED[key]}"
        raise ConfigError(msg)
    return key


@dataclass(frozen=True)
class KafkaSettings:
    """librdkafka properties as strings, validated on construction."""

    values: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checked = {_check_key(k): _text(k, v) for k, v in dict(self.values).items()}
        object.__setattr__(self, "values", checked)

    @classmethod
    def from_pairs(cls, pairs: Iterable[str]) -> KafkaSettings:
        """From ``KEY=VALUE`` strings (``--kafka-config``); a later key wins."""
        values: dict[str, str] = {}
        for pair in pairs:
            key, eq, value = pair.partition("=")
            key = key.strip()
            if not eq or not key:
                shown = pair if not is_secret(key) else f"{key}={REDACTED}"
                msg = f"--kafka-config {shown!r} must be KEY=VALUE (e.g. security.protocol=SSL)"
                raise ConfigError(msg)
            values[key] = value
        return cls(values)

    @classmethod
    def from_section(cls, section: Mapping[str, Any] | None) -> KafkaSettings:
        """From a config file's ``[kafka]`` section (a table of properties)."""
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            msg = ("the config file's kafka section must be a table of settings, "
                   f"got {type(section).__name__}")
            raise ConfigError(msg)
        return cls(dict(section))

    def merged(self, override: KafkaSettings) -> KafkaSettings:
        """These settings with ``override``'s on top (flags over the config file)."""
        return KafkaSettings({**self.values, **override.values})

    def redacted(self) -> dict[str, str]:
        """The settings with every secret value replaced by ``***`` (for logs and run.json)."""
        return {k: (REDACTED if is_secret(k) else v) for k, v in sorted(self.values.items())}

    def client_config(self, bootstrap: str, **extra: Any) -> dict[str, Any]:
        """A librdkafka config: these settings, the brokers, then the service's own
        ``extra`` properties (callbacks, ``transactional.id`` ...), which win."""
        return {**self.values, "bootstrap.servers": bootstrap, **extra}

    def __repr__(self) -> str:
        return f"KafkaSettings({self.redacted()!r})"
