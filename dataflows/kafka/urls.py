"""``kafka://HOST:PORT[,HOST:PORT]/TOPIC``: where a Kafka input or output is.

The URL names the bootstrap brokers and one topic (for ``--out``, a topic
*prefix*: :func:`output_topics`). Everything else a client needs (security,
SASL, timeouts) is a librdkafka setting (:mod:`dataflows.kafka.settings`), so
the URL never carries a secret and can be logged and written to ``run.json``.

Rules, each refused with a one-line :class:`~dataflows.errors.ConfigError`:

- scheme ``kafka://``; one or more ``HOST:PORT`` separated by commas (an IPv6
  host in brackets, ``[::1]:9092``); ports 1..65535;
- exactly one topic after the first ``/``, in Kafka's legal characters
  ``[a-zA-Z0-9._-]``, at most 249 of them, not ``.`` or ``..``;
- no user info, query or fragment (settings go to ``--kafka-config``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dataflows.errors import ConfigError

SCHEME = "kafka://"
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)")

#: The output kinds and the topic suffix each gets under an output prefix.
OUTPUT_SUFFIXES: dict[str, str] = {"joined": "joined", "late": "late", "invalid": "invalid"}


@dataclass(frozen=True)
class KafkaUrl:
    """A parsed ``kafka://`` URL: bootstrap brokers and one topic."""

    brokers: tuple[str, ...]
    topic: str

    @property
    def bootstrap(self) -> str:
        """The brokers as librdkafka's ``bootstrap.servers`` value."""
        return ",".join(self.brokers)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bootstrap}/{self.topic}"


def is_kafka_url(text: str) -> bool:
    """Whether ``text`` is meant as a Kafka URL (it may still be malformed)."""
    return text.lower().startswith(SCHEME)


def _broker(item: str, text: str) -> str:
    host, sep, port = item.rpartition(":")
    if not sep or not host:
        msg = f"Kafka URL {text!r}: broker {item!r} needs HOST:PORT (e.g. localhost:9092)"
        raise ConfigError(msg)
    if not _HOST.fullmatch(host):
        msg = f"Kafka URL {text!r}: {host!r} is not a host name or address"
        raise ConfigError(msg)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        msg = f"Kafka URL {text!r}: port {port!r} must be a number from 1 to 65535"
        raise ConfigError(msg)
    return f"{host}:{int(port)}"


def parse_kafka_url(text: str) -> KafkaUrl:
    """Parse ``kafka://HOST:PORT[,HOST:PORT]/TOPIC`` (raises ``ConfigError``)."""
    if not is_kafka_url(text):
        msg = f"{text!r} is not a Kafka URL: expected kafka://HOST:PORT[,HOST:PORT]/TOPIC"
        raise ConfigError(msg)
    rest = text[len(SCHEME):]
    if any(c in rest for c in "?#@"):
        msg = (f"Kafka URL {text!r}: no user, query or fragment allowed; "
               "pass client settings with --kafka-config KEY=VALUE")
        raise ConfigError(msg)
    hosts, slash, topic = rest.partition("/")
    if not hosts:
        msg = f"Kafka URL {text!r} names no broker: expected kafka://HOST:PORT/TOPIC"
        raise ConfigError(msg)
    if not slash or not topic:
        msg = f"Kafka URL {text!r} names no topic: expected kafka://HOST:PORT/TOPIC"
        raise ConfigError(msg)
    if "/" in topic:
        msg = f"Kafka URL {text!r}: one topic only after the brokers, got {topic!r}"
        raise ConfigError(msg)
    if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
        msg = (f"Kafka URL {text!r}: topic {topic!r} is not a legal Kafka topic name "
               "(letters, digits, '.', '_', '-', at most 249)")
        raise ConfigError(msg)
    brokers = tuple(_broker(item.strip(), text) for item in hosts.split(","))
    return KafkaUrl(brokers, topic)


def output_topics(prefix: KafkaUrl) -> dict[str, KafkaUrl]:
    """The topics of the three outputs under an ``--out kafka://.../PREFIX``:
    ``PREFIX.joined``, ``PREFIX.late`` and ``PREFIX.invalid``."""
    out: dict[str, KafkaUrl] = {}
    for kind, suffix in OUTPUT_SUFFIXES.items():
        topic = f"{prefix.topic}.{suffix}"
        if len(topic) > 249:
            msg = f"Kafka output prefix {prefix.topic!r} is too long for topic {topic!r}"
            raise ConfigError(msg)
        out[kind] = KafkaUrl(prefix.brokers, topic)
    return out
