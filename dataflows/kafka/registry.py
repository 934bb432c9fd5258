"""The Schema Registry, as the Kafka sources and sinks use it.

A thin wrapper over confluent-kafka's ``SchemaRegistryClient`` (which does the
HTTP, authentication and retries): writer schemas by id, parsed for fastavro
once and cached for the life of the process (an id's schema never changes),
registering output schemas, a subject's latest schema, and compatibility
checks. It satisfies :class:`dataflows.inputs.kafka_records.WriterSchemas`.

Two kinds of failure are kept apart, since they end differently:

- the registry answers that it does not know an id (HTTP 404):
  :class:`~dataflows.inputs.kafka_records.UnknownSchemaId`, and the record that
  named it is a dead letter. Such answers are remembered for
  ``unknown_retry_ms``, so a flood of bad records does not flood the registry;
- the registry cannot be reached or fails: :class:`~dataflows.kafka.errors.RegistryError`,
  which the source logs, counts and retries (the record waits, it is not lost).

``conf`` holds the client's own settings besides the URL (for example
``basic.auth.user.info``); it is never logged. Each request uses a client of
its own, closed after it: requests are rare (one per schema id for the life of
the process, one per output schema), and a pooled HTTP connection left open
for the process's life is a leaked socket.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from dataflows.errors import ConfigError
from dataflows.inputs.kafka_records import UnknownSchemaId
from dataflows.kafka.errors import NoSubject, RegistryError

T = TypeVar("T")

#: The registry's error codes for "no such schema / subject / version".
_NOT_FOUND = (40401, 40402, 40403)


def _monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


def _schema_text(schema: Mapping[str, Any] | str) -> str:
    return schema if isinstance(schema, str) else json.dumps(schema, separators=(",", ":"))


class SchemaRegistry:
    """Schemas by id (cached), registration and compatibility, over one client."""

    def __init__(
        self,
        url: str,
        conf: Mapping[str, str] | None = None,
        *,
        unknown_retry_ms: int = 60_000,
        clock: Callable[[], int] = _monotonic_ms,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            msg = f"--schema-registry {url!r} must be an http:// or https:// URL"
            raise ConfigError(msg)
        self.url = url.rstrip("/")
        self._conf = {**dict(conf or {}), "url": self.url}
        try:
            SchemaRegistryClient(self._conf).close()  # refuses bad settings now
        except (ValueError, TypeError) as exc:
            msg = f"bad Schema Registry settings for {self.url}: {exc}"
            raise ConfigError(msg) from exc
        self._parsed: dict[int, Any] = {}
        self._texts: dict[int, str] = {}
        self._unknown: dict[int, int] = {}
        self._unknown_retry_ms = unknown_retry_ms
        self._clock = clock
        self._lock = threading.Lock()
        #: HTTP round trips made for writer schemas (the cache's misses).
        self.fetches = 0

    def _call(self, request: Callable[[SchemaRegistryClient], T]) -> T:
        with SchemaRegistryClient(self._conf) as client:
            return request(client)

    def _fail(self, what: str, exc: Exception) -> RegistryError:
        return RegistryError(f"Schema Registry {self.url}: cannot {what}: {exc}; "
                             "check that it is up and the URL and credentials are right")

    def writer_schema(self, schema_id: int) -> Any:
        """The parsed schema ``schema_id`` (fetched once, then from the cache)."""
        parsed = self._parsed.get(schema_id)
        if parsed is not None:
            return parsed
        with self._lock:
            parsed = self._parsed.get(schema_id)
            if parsed is not None:
                return parsed
            since = self._unknown.get(schema_id)
            if since is not None and self._clock() - since < self._unknown_retry_ms:
                raise UnknownSchemaId(schema_id)
            self.fetches += 1
            try:
                schema = self._call(lambda c: c.get_schema(schema_id))
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404 or exc.error_code in _NOT_FOUND:
                    self._unknown[schema_id] = self._clock()
                    raise UnknownSchemaId(schema_id) from exc
                what = f"fetch schema id {schema_id}"
                raise self._fail(what, exc) from exc
            except Exception as exc:  # httpx raises its own connection errors
                what = f"fetch schema id {schema_id}"
                raise self._fail(what, exc) from exc
            if (schema.schema_type or "AVRO") != "AVRO" or schema.schema_str is None:
                self._unknown[schema_id] = self._clock()
                raise UnknownSchemaId(schema_id)
            text = schema.schema_str
            try:
                parsed = fastavro.parse_schema(json.loads(text))
            except Exception as exc:  # a registry holding a schema fastavro refuses
                what = f"parse schema id {schema_id}"
                raise self._fail(what, exc) from exc
            self._texts[schema_id] = text
            self._parsed[schema_id] = parsed
            return parsed

    def schema_text(self, schema_id: int) -> str:
        """The JSON text of schema ``schema_id`` as the registry holds it."""
        self.writer_schema(schema_id)
        return self._texts[schema_id]

    def register(self, subject: str, schema: Mapping[str, Any] | str) -> int:
        """Register ``schema`` under ``subject`` and return its id (the id it
        already has if it is registered); refused with ``RegistryError`` when the
        subject's compatibility level rejects it."""
        try:
            text = _schema_text(schema)
            return int(self._call(lambda c: c.register_schema(subject, Schema(text, "AVRO"))))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:
                msg = (f"Schema Registry {self.url} refuses the schema for subject {subject!r} "
                       f"as incompatible: {exc.error_message}; register a compatible schema "
                       "or change the subject's compatibility level")
                raise RegistryError(msg) from exc
            what = f"register a schema under {subject!r}"
            raise self._fail(what, exc) from exc
        except Exception as exc:  # connection errors
            what = f"register a schema under {subject!r}"
            raise self._fail(what, exc) from exc

    def latest(self, subject: str) -> tuple[int, dict[str, Any]]:
        """``(id, schema)`` of the latest version under ``subject``."""
        try:
            registered = self._call(lambda c: c.get_latest_version(subject))
        except SchemaRegistryError as exc:
            if exc.error_code in _NOT_FOUND or exc.http_status_code == 404:
                msg = (f"Schema Registry {self.url} has no subject {subject!r}; register the "
                       "topic's schema first or give the reader schema as a file")
                raise NoSubject(msg) from exc
            what = f"read the latest schema of {subject!r}"
            raise self._fail(what, exc) from exc
        except Exception as exc:
            what = f"read the latest schema of {subject!r}"
            raise self._fail(what, exc) from exc
        text = registered.schema.schema_str if registered.schema is not None else None
        if registered.schema_id is None or text is None:
            msg = f"Schema Registry {self.url} answered no schema for subject {subject!r}"
            raise RegistryError(msg)
        schema: dict[str, Any] = json.loads(text)
        return int(registered.schema_id), schema

    def is_compatible(self, subject: str, schema: Mapping[str, Any] | str) -> bool:
        """Whether ``schema`` may follow the latest version of ``subject`` under
        the subject's compatibility level (the registry decides)."""
        try:
            text = _schema_text(schema)
            return bool(self._call(lambda c: c.test_compatibility(subject, Schema(text, "AVRO"))))
        except SchemaRegistryError as exc:
            what = f"check compatibility under {subject!r}"
            raise self._fail(what, exc) from exc
        except Exception as exc:
            what = f"check compatibility under {subject!r}"
            raise self._fail(what, exc) from exc


def subject_of(topic: str) -> str:
    """The value subject of ``topic`` under the default TopicNameStrategy."""
    return f"{topic}-value"
