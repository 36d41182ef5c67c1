"""The OpenAPI 3.1 description of the REST API, served at /api/openapi.json.

Derived, not written beside the code: ``paths`` is the route table (server/routes.py),
each route carrying its operation object, built with the helpers here; the request and
response ``components`` are the shapes the server validates and answers with. Limits and
patterns are taken from the modules that enforce them, so the document cannot drift from
the server; tests/hostile/test_schemathesis.py runs Schemathesis against it.

Every operation lists every status it can answer besides 401/403 (auth), 405 (a method
the path does not have), 431 (request head over 16 KiB) and 500 (a bug: no test allows
one); error bodies are always the ``Error`` envelope.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from core import storage
from core.components import EVENT_DATA, components, webhook_event
from core.config import Settings
from core.media.filmstrip import MAX_COUNT
from core.uploads.resumable import TUS_VERSION
from server.http.files import WEB_CONTENT_TYPES
from server.http.request import MAX_JSON_DEPTH
from server.http.routing import Route
from server.policy.idempotency import MAX_IDEMPOTENCY_KEY

ERROR = {"$ref": "#/components/schemas/Error"}
_DEFAULTS = Settings()


def json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    return json_content(ERROR, description)


# Answers many operations share.
JSON_BODY = {
    "400": error("A field is missing or invalid (named in 'field'), or the body is not JSON this server "
                  f"accepts (malformed, invalid UTF-8, nested over {MAX_JSON_DEPTH} levels, U+0000, "
                  "a number past float range)"),
    "413": error(f"Body over {_DEFAULTS.json_body_limit} bytes"),
    "415": error("Content-Type is not application/json"),
}
RATE_LIMITED = {"429": {**error("Too many requests from this client (Retry-After says when to retry)"),
                        "headers": {"Retry-After": {"schema": {"type": "string"}}}}}
DATABASE = {"503": error("PostgreSQL is unavailable")}
MEDIA_ERRORS = {"415": error("Not a video"), "422": error("A corrupt or unreadable video"),
                "503": error("The media workers are busy or restarting")}


def operation(summary: str, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
              params: list[dict[str, Any]] | None = None, tags: list[str] | None = None) -> dict[str, Any]:
    """An operation object; a JSON ``body`` adds its request body and :data:`JSON_BODY`'s answers."""
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        operation["responses"] = {**JSON_BODY, **responses}
    if params:
        operation["parameters"] = params
    if tags:
        operation["tags"] = tags
    return operation


def path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def query_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter; every one of this API's takes ``?name=`` as absent."""
    return {"name": name, "in": "query", "required": False, "allowEmptyValue": True, "schema": schema}


def header(name: str, schema: dict[str, Any], *, required: bool = True, description: str | None = None
           ) -> dict[str, Any]:
    param = {"name": name, "in": "header", "required": required, "schema": schema}
    if description:
        param["description"] = description
    return param


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS = components(MAX_JSON_DEPTH)

PROJECT = ref("Project")
FILENAME = path_param("filename", ref("FileName"))
UPLOAD_ID = path_param("id", {"type": "string", "pattern": "^[0-9a-f]{32}$"})
# Header values that must be one string are written `enum: [value]`, not `const` (the same in
# JSON Schema): openapi-python-client drops every operation with a `const` header.
TUS_RESUMABLE = header("Tus-Resumable", {"type": "string", "enum": [TUS_VERSION]},
                       description="Absent or another version: 412, as tus 1.0 says")
NOT_MODIFIED = {"description": "Not modified (If-None-Match, or without it If-Modified-Since)"}
STATIC_FILE = {"description": "The file (ETag; Cache-Control: no-cache)",
               "content": {kind.split(";")[0]: {} for kind in {*WEB_CONTENT_TYPES.values(),
                                                                "application/octet-stream"}}}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
MEDIA_FILE = {"description": "The file, or the requested byte range",
              "content": {kind: _BINARY for kind in {*storage.CONTENT_TYPES.values(), "application/octet-stream"}}}
SPRITE = {"description": "Sprite, or the requested byte range", "content": {"image/jpeg": _BINARY}}
UNSATISFIABLE = error("Range not satisfiable (Content-Range: bytes */size)")
SESSION = json_content(ref("Session"), "The session; sets the nve_session cookie")
COUNT = query_param("count", {"type": "integer", "minimum": 1, "maximum": MAX_COUNT, "default": 10})


def bad_query(name: str, high: int) -> dict[str, Any]:
    return error(f"Query parameter '{name}' is not an integer from 1 to {high}")



IDEMPOTENCY_KEY = header("Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY,
                                             "pattern": "\\S"},
                         required=False, description="A key used before returns what it created "
                                                     "(with Idempotent-Replayed: true)")
OPERATION_ID = path_param("operationId", {"type": "string"})


def edit_operation(summary: str, body: str) -> dict[str, Any]:
    """``POST /api/edit/*``: a job request answered 202 ``Accepted``."""
    return operation(summary, {
        "202": json_content(ref("Accepted"), "Queued"),
        "404": error("Unknown video or project"), **RATE_LIMITED, **DATABASE},
        body=ref(body), params=[IDEMPOTENCY_KEY], tags=["jobs"])


def tus_operation(summary: str, responses: dict[str, Any], params: list[dict[str, Any]]) -> dict[str, Any]:
    """A tus operation: with Tus-Resumable among ``params``, 412 for a missing or other version."""
    version = {"412": error(f"Tus-Resumable is absent or not {TUS_VERSION}")} if TUS_RESUMABLE in params else {}
    return operation(summary, {**responses, **version}, params=params, tags=["tus"])


def named(operation_id: str, operation: dict[str, Any]) -> dict[str, Any]:
    """``operation`` with an explicit operationId, for paths whose generated names would clash."""
    return {**operation, "operationId": operation_id}


SECURITY_SCHEMES = {
    "apiKey": {"type": "http", "scheme": "bearer", "description": "A key from `nve apikey create`: its tenant"},
    "session": {"type": "apiKey", "in": "cookie", "name": "nve_session",
                "description": "A browser session (GET / or GET /api/session starts one)"},
}
SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}, {"session": []}, {}]
"""Any one of them; none is needed by the local user (open mode, or this machine's own clients in auto)."""


_SIGNATURE_HEADERS = [
    header("webhook-id", {"type": "string"}, description="The event's id: the same on every attempt (dedupe by it)"),
    header("webhook-timestamp", {"type": "string", "pattern": "^[0-9]+$"},
           description="Unix seconds of this attempt"),
    header("webhook-signature", {"type": "string"},
           description="Space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>`, one per valid secret "
                       "(two during a rotation's overlap); verify with the standardwebhooks libraries"),
]


def webhooks() -> dict[str, Any]:
    """OpenAPI 3.1 ``webhooks``: what nve POSTs to a subscribed endpoint, one entry per event type."""
    return {event: {"post": {
        "summary": f"The {event} event (Standard Webhooks)", "tags": ["webhooks"],
        "parameters": _SIGNATURE_HEADERS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": webhook_event(event)}}},
        "responses": {"2XX": {"description": "Delivered"},
                      "default": {"description": "Not delivered: retried with backoff for 24 h (redirects are "
                                                 "not followed)"}}}} for event in EVENT_DATA}


def document(routes: Iterable[Route]) -> dict[str, Any]:
    """The whole document: ``routes``' operations (those with a ``doc``) under their paths."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.doc is not None:
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.pattern)
            paths.setdefault(path, {})[route.method.lower()] = route.doc
    return {
        "openapi": "3.1.0",
        "info": {"title": "native-video-editor", "version": "0.1.0",
                 "description": "Video-editor backend: projects, media, jobs, sessions. "
                                "WebSocket progress at /ws (see docs/CONTRACT.md section 3). JSON bodies: UTF-8 "
                                f"(a leading BOM is ignored), at most {_DEFAULTS.json_body_limit} bytes, "
                                f"arrays and objects nested at most {MAX_JSON_DEPTH} levels, no U+0000 "
                                "in strings, the last of duplicate keys wins."},
        "paths": paths,
        "webhooks": webhooks(),
        "security": SECURITY,
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }
