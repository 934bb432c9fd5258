"""A small local Schema Registry over HTTP, for tests and ``streamjoin kafka-dev``.

No Confluent Schema Registry can run here, so this implements the part of its
REST API that confluent-kafka's ``SchemaRegistryClient`` uses, on the standard
library's ``http.server`` (one thread per request), in a thread of this
process (:class:`LocalSchemaRegistry`) or as a helper process (``python -m
dataflows.kafka.registry_server``, which prints ``{"url": ...}`` and exits when
its stdin closes). State lives in memory only.

Endpoints (Avro schemas only; bodies and answers as the real registry's):

- ``GET /schemas/ids/{id}`` and ``GET /schemas/ids/{id}/versions``;
- ``GET /subjects``, ``GET /subjects/{s}/versions``,
  ``GET /subjects/{s}/versions/{version|latest}``;
- ``POST /subjects/{s}/versions``: register (the same schema text gets the same
  id in every subject; registering it again under a subject returns its id and
  makes no new version), refused with HTTP 409 when the subject's
  compatibility level rejects it;
- ``POST /subjects/{s}``: look a schema up under a subject;
- ``POST /compatibility/subjects/{s}/versions/{version|latest}``;
- ``GET|PUT /config`` and ``GET|PUT /config/{s}``: the compatibility level,
  one of ``NONE``, ``BACKWARD`` (the default), ``FORWARD``, ``FULL`` and their
  ``_TRANSITIVE`` forms.

Compatibility is judged by the Apache ``avro`` package's
``ReaderWriterCompatibilityChecker``: BACKWARD means the new schema, as reader,
can read data written with the previous one (all previous ones when
transitive); FORWARD the other way round; FULL both. Errors are JSON
``{"error_code", "message"}`` with the registry's codes (40401 subject not
found, 40402 version not found, 40403 schema not found, 409 incompatible, 42201
invalid schema, 42203 invalid compatibility level).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
          "FULL", "FULL_TRANSITIVE")


class _Refused(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _identity(schema_text: str) -> str:
    """What makes two registrations the same schema: the same JSON, key order aside."""
    return json.dumps(json.loads(schema_text), sort_keys=True, separators=(",", ":"))


def compatible(reader: str, writer: str) -> bool:
    """Whether data written with schema text ``writer`` can be read with ``reader``."""
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(avro.schema.parse(reader), avro.schema.parse(writer))
    return result.compatibility is SchemaCompatibilityType.compatible


@dataclass
class RegistryState:
    """Schemas by id, subjects' versions, compatibility levels (guarded by ``lock``)."""

    level: str = "BACKWARD"
    schemas: list[str] = field(default_factory=list)  # id - 1 -> schema text
    ids: dict[str, int] = field(default_factory=dict)  # identity -> id
    subjects: dict[str, list[int]] = field(default_factory=dict)  # subject -> ids by version
    subject_levels: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def schema(self, schema_id: int) -> str:
        if not 1 <= schema_id <= len(self.schemas):
            raise _Refused(404, 40403, f"Schema {schema_id} not found")
        return self.schemas[schema_id - 1]

    def versions(self, subject: str) -> list[int]:
        versions = self.subjects.get(subject)
        if not versions:
            raise _Refused(404, 40401, f"Subject '{subject}' not found.")
        return versions

    def version(self, subject: str, version: str) -> tuple[int, int]:
        """``(version number, schema id)`` of ``version`` (a number or ``latest``)."""
        versions = self.versions(subject)
        if version in ("latest", "-1"):
            return len(versions), versions[-1]
        if not version.isdigit() or not 1 <= int(version) <= len(versions):
            raise _Refused(404, 40402, f"Version {version} not found.")
        return int(version), versions[int(version) - 1]

    def level_of(self, subject: str) -> str:
        return self.subject_levels.get(subject, self.level)

    def check(self, subject: str, text: str, against: list[int]) -> list[str]:
        """Why ``text`` may not follow the schemas ``against`` (oldest first) under
        the subject's level; empty when it may."""
        level = self.level_of(subject)
        if level == "NONE" or not against:
            return []
        previous = against if level.endswith("_TRANSITIVE") else against[-1:]
        problems = []
        for old_id in previous:
            old = self.schemas[old_id - 1]
            if level.startswith(("BACKWARD", "FULL")) and not compatible(text, old):
                problems.append(f"new schema cannot read data written with schema id {old_id}")
            if level.startswith(("FORWARD", "FULL")) and not compatible(old, text):
                problems.append(f"schema id {old_id} cannot read data written with the new schema")
        return problems


def _schema_text(body: dict[str, Any]) -> str:
    kind = body.get("schemaType", "AVRO") or "AVRO"
    if kind != "AVRO":
        raise _Refused(422, 42201, f"Only AVRO schemas are supported here, got {kind}")
    if body.get("references"):
        raise _Refused(422, 42201, "Schema references are not supported here")
    text = body.get("schema")
    if not isinstance(text, str):
        raise _Refused(422, 42201, "Request needs a 'schema' string")
    try:
        avro.schema.parse(text)
    except (avro.errors.AvroException, ValueError) as exc:
        raise _Refused(422, 42201, f"Invalid schema: {exc}") from exc
    return text


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and kafka-dev do not want a line per request."""

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as exc:
            raise _Refused(422, 42201, f"Request body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise _Refused(422, 42201, "Request body must be a JSON object")
        return body

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        state = self.server.state
        try:
            body = self._body() if method in ("POST", "PUT") else {}
            with state.lock:
                status, answer = _route(state, method, parts, query, body)
        except _Refused as refused:
            status, answer = refused.status, {"error_code": refused.code,
                                              "message": refused.message}
        self._answer(status, answer)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")


def _route(
    state: RegistryState, method: str, parts: list[str], query: dict[str, str],
    body: dict[str, Any],
) -> tuple[int, Any]:
    n = len(parts)
    if method == "GET" and n >= 3 and parts[:2] == ["schemas", "ids"]:
        if not parts[2].isdigit():
            raise _Refused(404, 40403, f"Schema {parts[2]} not found")
        schema_id = int(parts[2])
        text = state.schema(schema_id)
        if n == 3:
            return 200, {"schema": text}
        if n == 4 and parts[3] == "versions":
            return 200, [{"subject": s, "version": i + 1}
                         for s, ids in sorted(state.subjects.items())
                         for i, sid in enumerate(ids) if sid == schema_id]
    if parts[:1] == ["subjects"]:
        if method == "GET" and n == 1:
            return 200, sorted(state.subjects)
        subject = parts[1] if n > 1 else ""
        if method == "GET" and n == 3 and parts[2] == "versions":
            return 200, list(range(1, len(state.versions(subject)) + 1))
        if method == "GET" and n == 4 and parts[2] == "versions":
            version, sid = state.version(subject, parts[3])
            return 200, {"subject": subject, "version": version, "id": sid,
                         "schema": state.schemas[sid - 1]}
        if method == "POST" and n == 3 and parts[2] == "versions":
            text = _schema_text(body)
            known = state.ids.get(_identity(text))
            versions = state.subjects.get(subject, [])
            if known is not None and known in versions:
                return 200, {"id": known}
            problems = state.check(subject, text, versions)
            if problems:
                raise _Refused(409, 409, "Schema being registered is incompatible with an "
                               f"earlier schema for subject '{subject}': {'; '.join(problems)}")
            if known is None:
                state.schemas.append(text)
                known = state.ids[_identity(text)] = len(state.schemas)
            state.subjects.setdefault(subject, []).append(known)
            return 200, {"id": known}
        if method == "POST" and n == 2:
            text = _schema_text(body)
            versions = state.versions(subject)
            known = state.ids.get(_identity(text))
            if known is None or known not in versions:
                raise _Refused(404, 40403, "Schema not found")
            return 200, {"subject": subject, "version": versions.index(known) + 1,
                         "id": known, "schema": state.schemas[known - 1]}
    if method == "POST" and n == 5 and parts[:2] == ["compatibility", "subjects"] \
            and parts[3] == "versions":
        text = _schema_text(body)
        _, sid = state.version(parts[2], parts[4])
        versions = state.versions(parts[2])
        against = versions if state.level_of(parts[2]).endswith("_TRANSITIVE") else [sid]
        problems = state.check(parts[2], text, against)
        answer: dict[str, Any] = {"is_compatible": not problems}
        if query.get("verbose", "").lower() == "true":
            answer["messages"] = problems
        return 200, answer
    if parts[:1] == ["config"] and n <= 2:
        named = parts[1] if n == 2 else None
        if method == "GET":
            if named is None:
                return 200, {"compatibilityLevel": state.level}
            own = state.subject_levels.get(named)
            if own is None and query.get("defaultToGlobal", "").lower() != "true":
                raise _Refused(404, 40408, f"Subject '{named}' does not have "
                               "subject-level compatibility configured")
            return 200, {"compatibilityLevel": own or state.level}
        if method == "PUT":
            level = str(body.get("compatibility", "")).upper()
            if level not in LEVELS:
                raise _Refused(422, 42203, f"Invalid compatibility level {level!r}: "
                               f"expected one of {', '.join(LEVELS)}")
            if named is None:
                state.level = level
            else:
                state.subject_levels[named] = level
            return 200, {"compatibility": level}
    raise _Refused(404, 404, f"HTTP {method} /{'/'.join(parts)} is not served here")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: RegistryState) -> None:
        super().__init__(address, _Handler)
        self.state = state


class LocalSchemaRegistry:
    """The registry on ``host:port`` (0: a free port) in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, level: str = "BACKWARD") -> None:
        if level not in LEVELS:
            msg = f"compatibility level {level!r} must be one of {', '.join(LEVELS)}"
            raise ValueError(msg)
        self.state = RegistryState(level=level)
        self._server = _Server((host, port), self.state)
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host!s}:{bound_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="schema-registry", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> LocalSchemaRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """The helper process: serve, print ``{"url": ...}``, stop when stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m dataflows.kafka.registry_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--compatibility", default="BACKWARD", choices=LEVELS)
    args = parser.parse_args(argv)
    with LocalSchemaRegistry(args.host, args.port, args.compatibility) as registry:
        print(json.dumps({"url": registry.url}), flush=True)
        for _ in sys.stdin:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
