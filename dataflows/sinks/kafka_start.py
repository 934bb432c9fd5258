"""Before a run starts its workers: the Kafka outputs' topics and delivery.

:func:`prepare_kafka_outputs` (called by :func:`dataflows.run.run` in the parent
process) checks that every output topic exists (streamjoin creates no topics:
their partition counts, retention and access rules are the operator's
choice), and settles the delivery: ``transactional`` unless the user chose,
falling back to ``at-least-once`` when the brokers refuse transactions (an
``init_transactions`` with a throwaway ``transactional.id`` fails), so that
the default is the stronger guarantee that works.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from confluent_kafka import KafkaException

from dataflows.config import RunConfig
from dataflows.kafka import make_producer, parse_kafka_url, topic_partitions


def prepare_kafka_outputs(cfg: RunConfig, timeout_s: float = 15.0) -> tuple[RunConfig, str]:
    """``cfg`` with its Kafka delivery settled, and a note for the user (empty
    when there is nothing to say); raises ``KafkaClientError`` for a missing
    topic."""
    kafka = cfg.kafka
    if not kafka.outputs:
        return cfg, ""
    settings = kafka.client_settings()
    for _, text in kafka.outputs:
        url = parse_kafka_url(text)
        topic_partitions(settings, url.bootstrap, url.topic)
    if kafka.delivery != "transactional" or kafka.delivery_given:
        return cfg, ""
    bootstrap = parse_kafka_url(kafka.outputs[0][1]).bootstrap
    extra = {"transactional.id": f"streamjoin.probe.{uuid.uuid4().hex}"}
    probe = make_producer(settings, bootstrap, None, **extra)
    try:
        probe.init_transactions(timeout_s)
    except KafkaException as exc:
        why = exc.args[0].str() if exc.args else str(exc)
        note = (f"kafka: the brokers refuse transactions ({why}); delivering at least once "
                "(consumers deduplicate by the id header); --kafka-delivery transactional "
                "makes this an error")
        return replace(cfg, kafka=replace(kafka, delivery="at-least-once")), note
    finally:
        probe.flush(1.0)
    return cfg, ""

