"""The local Schema Registry server, through confluent-kafka's client and our
wrapper (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from dataflows.errors import ConfigError
from dataflows.inputs.kafka_records import UnknownSchemaId
from dataflows.kafka import LocalSchemaRegistry, RegistryError, SchemaRegistry
from dataflows.kafka.registry_server import compatible


def schema(*extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "Impression", "namespace": "t",
            "fields": [{"name": "key", "type": "string"}, {"name": "ts", "type": "long"},
                       *extra]}


V1 = schema()
V2 = schema({"name": "country", "type": "string", "default": "xx"})  # added with a default
NO_DEFAULT = schema({"name": "device", "type": "string"})  # added without one


def subject() -> str:
    return f"s-{uuid.uuid4().hex[:10]}-value"


def test_register_lookup_and_latest(registry: LocalSchemaRegistry) -> None:
    client = SchemaRegistry(registry.url)
    s = subject()
    v1 = client.register(s, V1)
    v2 = client.register(s, V2)
    assert v1 != v2
    assert client.register(s, V1) == v1  # known: same id, no new version
    assert client.register(subject(), V1) == v1  # same schema, another subject: same id
    assert client.latest(s) == (v2, V2)
    assert client.writer_schema(v2)["name"] == "t.Impression"
    assert json.loads(client.schema_text(v1)) == V1
    with urllib.request.urlopen(f"{registry.url}/subjects/{s}/versions") as answer:  # noqa: S310
        assert json.load(answer) == [1, 2]
    with urllib.request.urlopen(f"{registry.url}/schemas/ids/{v1}/versions") as answer:  # noqa: S310
        assert {"subject": s, "version": 1} in json.load(answer)


def test_writer_schemas_are_cached(registry: LocalSchemaRegistry) -> None:
    sid = SchemaRegistry(registry.url).register(subject(), V2)
    client = SchemaRegistry(registry.url)
    for _ in range(5):
        client.writer_schema(sid)
    assert client.fetches == 1


def test_unknown_id_is_remembered_for_a_while(registry: LocalSchemaRegistry) -> None:
    now = [0]
    client = SchemaRegistry(registry.url, unknown_retry_ms=1000, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(UnknownSchemaId):
            client.writer_schema(987_654)
    assert client.fetches == 1
    now[0] = 1000
    with pytest.raises(UnknownSchemaId):
        client.writer_schema(987_654)
    assert client.fetches == 2


def test_backward_compatibility_refuses_a_field_without_default(
    registry: LocalSchemaRegistry,
) -> None:
    client = SchemaRegistry(registry.url)
    s = subject()
    client.register(s, V1)
    assert client.is_compatible(s, V2)
    assert not client.is_compatible(s, NO_DEFAULT)
    with pytest.raises(RegistryError, match="incompatible") as info:
        client.register(s, NO_DEFAULT)
    assert "\n" not in str(info.value)


def test_compatibility_levels(registry: LocalSchemaRegistry) -> None:
    # FORWARD: the old schema must read data of the new one. Dropping a field
    # that has no default breaks that; adding one does not.
    dropped = {"type": "record", "name": "Impression", "namespace": "t",
               "fields": [{"name": "key", "type": "string"}]}
    assert compatible(json.dumps(dropped), json.dumps(V1))  # new reads old: fine
    assert not compatible(json.dumps(V1), json.dumps(dropped))  # old reads new: no ts
    client = SchemaRegistry(registry.url)
    raw = SchemaRegistryClient({"url": registry.url})  # for the /config endpoints
    s = subject()
    client.register(s, V1)
    assert raw.set_compatibility(s, "FORWARD") == {"compatibility": "FORWARD"}
    assert raw.get_compatibility(s) == "FORWARD"
    assert not client.is_compatible(s, dropped)
    assert client.is_compatible(s, NO_DEFAULT)  # V1 reads it, ignoring the new field
    raw.set_compatibility(s, "NONE")
    client.register(s, dropped)
    assert raw.get_compatibility() == "BACKWARD"  # the global level is untouched
    raw.close()


def test_errors_of_the_server(registry: LocalSchemaRegistry) -> None:
    def post(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(  # noqa: S310 - a local http:// URL
            f"{registry.url}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request) as answer:  # noqa: S310
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as err:
            return err.code, json.load(err)

    assert post(f"/subjects/{subject()}/versions", {"schema": "{bad"})[1]["error_code"] == 42201
    assert post(f"/subjects/{subject()}/versions",
                {"schema": "{}", "schemaType": "PROTOBUF"})[1]["error_code"] == 42201
    assert post(f"/subjects/{subject()}", {"schema": json.dumps(V1)})[1]["error_code"] == 40401
    s = subject()
    SchemaRegistry(registry.url).register(s, V1)
    assert post(f"/subjects/{s}", {"schema": json.dumps(V2)})[1]["error_code"] == 40403
    status, found = post(f"/subjects/{s}", {"schema": json.dumps(V1)})
    assert status == 200
    assert found["version"] == 1


def test_unreachable_registry_is_an_error_not_an_unknown_id() -> None:
    with LocalSchemaRegistry() as gone:
        url = gone.url
    client = SchemaRegistry(url, {"max.retries": 0})
    with pytest.raises(RegistryError, match="cannot fetch schema id 1") as info:
        client.writer_schema(1)
    assert not isinstance(info.value, UnknownSchemaId)
    with pytest.raises(ConfigError, match="http"):
        SchemaRegistry("localhost:8081")
