"""The Kafka part of a run's configuration: :class:`KafkaRunConfig`.

A run reads a side from Kafka when its ``--left``/``--right`` is a
``kafka://HOST:PORT[,HOST:PORT]/TOPIC`` URL (:class:`~dataflows.config.InputConfig`
then has no files). Everything else Kafka-wide is here:

- ``settings``: librdkafka properties (security, SASL, timeouts ...) from the
  config file's ``[kafka]`` table and ``--kafka-config KEY=VALUE``; keys
  ``schema.registry.*`` are the Schema Registry client's own settings
  (``schema.registry.basic.auth.user.info`` ...), split off by
  :meth:`KafkaRunConfig.registry_conf`;
- ``registry``: the Schema Registry URL (``--schema-registry``), needed by
  Confluent Avro inputs and outputs;
- ``until_end``: read every Kafka input up to the end offsets taken at the
  first start, then end (tests, backfills); else tail until stopped;
- ``outputs``: which outputs go to Kafka topics, ``kind -> kafka://.../TOPIC``
  (``--out-kafka kafka://.../PREFIX`` names ``PREFIX.joined``, ``.late`` and
  ``.invalid``; ``--out-joined`` and so on name one each). The others stay files
  under ``--out``, which is always the run's local directory: ``run.json``, the
  final counters and the metrics endpoints are files, whatever the outputs are;
- ``delivery``: ``transactional`` (the default) or ``at-least-once``, see
  :mod:`dataflows.sinks.kafka`; ``delivery_given`` says whether the user chose
  it (a defaulted ``transactional`` falls back to ``at-least-once`` when the
  brokers refuse transactions, :func:`dataflows.run.run`).

**Secrets** never reach a file: :meth:`KafkaRunConfig.to_json` writes the
settings redacted (``***``), so ``OUT/.run/config.json``, ``run.json`` and the
recovery directory never hold a password; the run hands the real values to its
worker processes in the environment variable :data:`SECRETS_ENV`
(:func:`secrets_env`), and a worker puts them back with :func:`with_secrets`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dataflows.errors import ConfigError
from dataflows.kafka import KafkaSettings, KafkaUrl, parse_kafka_url
from dataflows.kafka.settings import REDACTED, is_secret

DELIVERIES = ("transactional", "at-least-once")
OUTPUT_KINDS = ("joined", "late", "invalid")
#: Where a run's worker processes find the secret Kafka settings (JSON).
SECRETS_ENV = "STREAMJOIN_KAFKA_SECRETS"
#: Keys of :attr:`KafkaRunConfig.settings` meant for the Schema Registry client.
REGISTRY_PREFIX = "schema.registry."
#: librdkafka's default ``transaction.timeout.ms``: an epoch's transaction stays
#: open for up to two snapshot intervals (see dataflows.sinks.kafka).
DEFAULT_TRANSACTION_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class KafkaRunConfig:
    """Kafka-wide settings of a run (see the module docstring)."""

    settings: KafkaSettings = field(default_factory=KafkaSettings)
    registry: str = ""
    until_end: bool = False
    delivery: str = "transactional"
    delivery_given: bool = False
    #: ``(kind, kafka URL)`` of each output that goes to a topic.
    outputs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.delivery not in DELIVERIES:
            msg = (f"--kafka-delivery must be one of {', '.join(DELIVERIES)}, "
                   f"got {self.delivery!r}")
            raise ConfigError(msg)
        if self.registry and not self.registry.startswith(("http://", "https://")):
            msg = f"--schema-registry {self.registry!r} must be an http:// or https:// URL"
            raise ConfigError(msg)
        if "schema.registry.url" in self.settings.values:
            msg = "Kafka setting 'schema.registry.url' cannot be set: use --schema-registry URL"
            raise ConfigError(msg)
        for kind, url in self.outputs:
            if kind not in OUTPUT_KINDS:
                msg = f"unknown output {kind!r}: expected one of {', '.join(OUTPUT_KINDS)}"
                raise ConfigError(msg)
            parse_kafka_url(url)

    def output_url(self, kind: str) -> KafkaUrl | None:
        """The topic ``kind`` goes to, or ``None`` for a file under ``--out``."""
        for k, url in self.outputs:
            if k == kind:
                return parse_kafka_url(url)
        return None

    def client_settings(self) -> KafkaSettings:
        """The settings for librdkafka clients (without the registry's)."""
        return KafkaSettings({k: v for k, v in self.settings.values.items()
                              if not k.startswith(REGISTRY_PREFIX)})

    def registry_conf(self) -> dict[str, str]:
        """The Schema Registry client's settings (``schema.registry.X`` as ``X``)."""
        return {k[len(REGISTRY_PREFIX):]: v for k, v in self.settings.values.items()
                if k.startswith(REGISTRY_PREFIX)}

    def transaction_timeout_ms(self) -> int:
        """librdkafka's ``transaction.timeout.ms`` as the settings give it."""
        value = self.settings.values.get("transaction.timeout.ms")
        if value is None:
            return DEFAULT_TRANSACTION_TIMEOUT_MS
        try:
            return int(value)
        except ValueError:
            msg = f"Kafka setting transaction.timeout.ms must be milliseconds, got {value!r}"
            raise ConfigError(msg) from None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able copy with every secret setting redacted."""
        return {
            "settings": self.settings.redacted(),
            "registry": self.registry,
            "until_end": self.until_end,
            "delivery": self.delivery,
            "delivery_given": self.delivery_given,
            "outputs": {kind: url for kind, url in self.outputs},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> KafkaRunConfig:
        """Inverse of :meth:`to_json` (secrets stay redacted: :func:`with_secrets`)."""
        if not data:
            return cls()
        return cls(
            settings=KafkaSettings(dict(data.get("settings", {}))),
            registry=str(data.get("registry", "")),
            until_end=bool(data.get("until_end", False)),
            delivery=str(data.get("delivery", "transactional")),
            delivery_given=bool(data.get("delivery_given", False)),
            outputs=tuple(sorted(dict(data.get("outputs", {})).items())),
        )


def secrets_env(kafka: KafkaRunConfig) -> dict[str, str]:
    """The environment a worker process needs for the secret settings (empty if
    there are none)."""
    secrets = {k: v for k, v in kafka.settings.values.items() if is_secret(k)}
    return {SECRETS_ENV: json.dumps(secrets)} if secrets else {}


def with_secrets(kafka: KafkaRunConfig, environ: Mapping[str, str]) -> KafkaRunConfig:
    """``kafka`` with its redacted settings restored from :data:`SECRETS_ENV`."""
    redacted = [k for k, v in kafka.settings.values.items() if v == REDACTED and is_secret(k)]
    if not redacted:
        return kafka
    try:
        secrets = json.loads(environ.get(SECRETS_ENV, "{}"))
    except ValueError:
        secrets = {}
    missing = [k for k in redacted if k not in secrets]
    if missing:
        msg = (f"Kafka settings {', '.join(sorted(missing))} are secret and were not handed "
               f"to this process ({SECRETS_ENV}); start runs with streamjoin run")
        raise ConfigError(msg)
    values = {**kafka.settings.values, **{k: secrets[k] for k in redacted}}
    return replace(kafka, settings=KafkaSettings(values))
