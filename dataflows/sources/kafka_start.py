"""Before a run starts its workers: the Kafka inputs' topics and reader schemas.

:func:`prepare_kafka_inputs` (called by :func:`dataflows.run.run` in the parent
process) checks that every input topic exists, and settles each Confluent Avro
side's reader schema once for the whole run:

- given as a file (``--left-schema``), it is checked against the topic's
  registry subject (``TOPIC-value``): a reader that the subject's
  compatibility rules say cannot read what is registered there is refused now
  (an incompatible writer schema, "refused at start when the registry can
  tell"); records whose writer schema is unknown to the subject are still
  judged one by one, and dead-lettered when they do not resolve;
- not given, it is the subject's latest schema.

The settled schema is part of the run's configuration, so every worker (and a
resume, and ``streamjoin validate``) reads with the same one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dataflows.config import InputConfig, RunConfig
from dataflows.errors import ConfigError
from dataflows.kafka import (
    KafkaClientError,
    NoSubject,
    RegistryError,
    SchemaRegistry,
    parse_kafka_url,
    subject_of,
    topic_partitions,
)


def prepare_kafka_inputs(cfg: RunConfig) -> RunConfig:
    """``cfg`` with each Confluent Avro side's reader schema settled (see the
    module docstring); raises ``KafkaClientError`` for a missing topic and
    ``ConfigError`` for a reader schema the registry refuses."""
    if not cfg.kafka_sides:
        return cfg
    registry = None
    sides: dict[str, InputConfig] = {}
    for side in cfg.kafka_sides:
        url = parse_kafka_url(side.kafka)
        topic_partitions(cfg.kafka.client_settings(), url.bootstrap, url.topic)
        if side.format != "avro":
            continue
        if registry is None:
            registry = SchemaRegistry(cfg.kafka.registry, cfg.kafka.registry_conf())
        sides[side.side] = replace(side, reader_schema=_reader(registry, side, url.topic))
    if not sides:
        return cfg
    return replace(cfg, **sides)  # type: ignore[arg-type]


def _reader(registry: SchemaRegistry, side: InputConfig, topic: str) -> dict[str, Any]:
    subject = subject_of(topic)
    if side.reader_schema is None:
        try:
            _, latest = registry.latest(subject)
        except RegistryError as exc:
            msg = (f"--{side.side} {side.kafka}: no reader schema (--{side.side}-schema FILE) "
                   f"and {exc}")
            raise KafkaClientError(msg) from exc
        return latest
    try:
        registry.latest(subject)
    except NoSubject:
        return side.reader_schema  # nothing registered to check against
    if not registry.is_compatible(subject, side.reader_schema):
        msg = (f"--{side.side}-schema cannot read what the Schema Registry holds under "
               f"{subject!r} (its compatibility rules refuse it as the next version); "
               "give a reader schema that resolves the registered writer schemas")
        raise ConfigError(msg)
    return side.reader_schema
