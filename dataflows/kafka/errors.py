"""Errors of the Kafka room: a broker, client or Schema Registry that fails.

Both derive from :class:`joins.errors.StreamJoinError` (exit 1). Malformed
``kafka://`` URLs and settings are usage errors and raise
:class:`dataflows.errors.ConfigError` (exit 2) instead; a record that cannot be
decoded is no error at all but a dead letter (:mod:`dataflows.inputs.kafka_records`).
"""

from __future__ import annotations

from joins.errors import StreamJoinError


class KafkaClientError(StreamJoinError):
    """The brokers cannot be reached or refuse a request (metadata, a topic that
    does not exist, a transaction the broker aborted): the message names the
    brokers or topic and what to check."""


class RegistryError(StreamJoinError):
    """The Schema Registry cannot be reached or refuses a request (an incompatible
    schema, a subject that does not exist)."""


class NoSubject(RegistryError):
    """The Schema Registry has no such subject (nothing registered under it)."""
