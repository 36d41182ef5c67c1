"""The OpenAPI 3.1 description of the REST API, served at /api/openapi.json.

Written as data rather than derived from handler signatures: the contract's shapes
(camelCase in, snake_case rows out, the error envelope) are the product, and a test
checks that every route on the router is described here and nothing else is.
"""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(ERROR, description)


def _op(summary: str, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, tags: list[str] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        operation["parameters"] = params
    if tags:
        operation["tags"] = tags
    return operation


def path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def query_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


PROJECT_ID = path_param("id", {"type": "integer"})

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
        "additionalProperties": True,
    },
    "Marker": {
        "type": "object", "required": ["time", "label"],
        "properties": {"time": {"type": "number", "minimum": 0}, "label": {"type": "string"}},
    },
    "EditOperation": {
        "type": "object", "required": ["type"],
        "properties": {
            "type": {"enum": ["trim", "cut", "split", "speed", "fade", "volume", "scale", "crop"]},
            "start": {"type": "number", "minimum": 0}, "end": {"type": "number", "minimum": 0},
            "at": {"type": "number", "minimum": 0},
            "factor": {"type": "number", "minimum": 0.25, "maximum": 4},
            "in": {"type": "number", "minimum": 0}, "out": {"type": "number", "minimum": 0},
            "gain": {"type": "number", "minimum": 0, "maximum": 4},
            "width": {"type": "integer"}, "height": {"type": "integer"},
            "x": {"type": "integer", "minimum": 0}, "y": {"type": "integer", "minimum": 0},
        },
    },
    "TimelineState": {
        "type": "object",
        "properties": {
            "currentTime": {"type": "number", "minimum": 0},
            "zoom": {"type": "number", "exclusiveMinimum": 0},
            "markers": {"type": "array", "items": {"$ref": "#/components/schemas/Marker"}},
            "edits": {"type": "array", "items": {"$ref": "#/components/schemas/EditOperation"}},
        },
        "additionalProperties": True,
    },
    "Project": {
        "type": "object",
        "required": ["id", "name", "description", "video_filename", "video_url", "timeline_state",
                     "version", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string", "maxLength": 255},
            "description": {"type": ["string", "null"]},
            "video_filename": {"type": "string"},
            "video_url": {"type": "string"},
            "timeline_state": {"$ref": "#/components/schemas/TimelineState"},
            "version": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
    "NewProject": {
        "type": "object",
        "required": ["name", "videoFilename", "videoUrl"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": {"type": ["string", "null"]},
            "videoFilename": {"type": "string", "minLength": 1, "maxLength": 255},
            "videoUrl": {"type": "string", "minLength": 1},
            "timelineState": {"$ref": "#/components/schemas/TimelineState"},
        },
    },
    "ProjectChanges": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": {"type": ["string", "null"]},
            "timelineState": {"$ref": "#/components/schemas/TimelineState"},
        },
    },
}

PROJECT = {"$ref": "#/components/schemas/Project"}

PATHS: dict[str, dict[str, Any]] = {
    "/healthz": {"get": _op("Liveness", {"200": _json({"type": "object"}, "Alive")}, tags=["ops"])},
    "/readyz": {"get": _op("Readiness: PostgreSQL reachable, other services reported", {
        "200": _json({"type": "object"}, "Ready"), "503": _error("PostgreSQL unreachable")}, tags=["ops"])},
    "/api/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                                     tags=["ops"])},
    "/api/projects": {
        "post": _op("Create a project", {
            "201": _json(PROJECT, "Created"), "400": _error("Missing or invalid field"),
            "413": _error("Body too large"), "503": _error("Database unavailable")},
            body={"$ref": "#/components/schemas/NewProject"}, tags=["projects"]),
        "get": _op("List projects, most recently updated first", {
            "200": {**_json({"type": "array", "items": PROJECT}, "A page of projects"),
                    "headers": {"X-Next-Cursor": {"schema": {"type": "string"},
                                                  "description": "Cursor of the next page, when there is one"}}},
            "400": _error("Bad limit or cursor"), "503": _error("Database unavailable")},
            params=[query_param("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
                    query_param("cursor", {"type": "string"})], tags=["projects"]),
    },
    "/api/projects/{id}": {
        "get": _op("One project (ETag: its version)", {
            "200": _json(PROJECT, "The project"), "400": _error("Non-integer id"), "404": _error("Unknown id"),
            "503": _error("Database unavailable")}, params=[PROJECT_ID], tags=["projects"]),
        "put": _op("Change name, description or timeline; If-Match for optimistic concurrency", {
            "200": _json(PROJECT, "The updated project"), "400": _error("Invalid field"),
            "404": _error("Unknown id"), "412": _json(PROJECT, "Stale If-Match: the current row, plus error"),
            "503": _error("Database unavailable")},
            body={"$ref": "#/components/schemas/ProjectChanges"},
            params=[PROJECT_ID, {"name": "If-Match", "in": "header", "required": False,
                                 "schema": {"type": "string"}}], tags=["projects"]),
        "delete": _op("Delete a project", {
            "204": {"description": "Deleted"}, "400": _error("Non-integer id"), "404": _error("Unknown id"),
            "503": _error("Database unavailable")}, params=[PROJECT_ID], tags=["projects"]),
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "native-video-editor", "version": "0.1.0",
                 "description": "Video-editor backend: projects, media, jobs, sessions. "
                                "WebSocket progress at /ws (see CONTRACT.md section 3)."},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }
