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
    "Metadata": {
        "type": "object",
        "required": ["duration", "width", "height", "codec"],
        "properties": {
            "duration": {"type": "number"}, "width": {"type": "integer"}, "height": {"type": "integer"},
            "codec": {"type": "string"}, "fps": {"type": ["number", "null"]},
            "bitrate": {"type": ["integer", "null"]}, "audio_codec": {"type": ["string", "null"]},
            "audio_channels": {"type": ["integer", "null"]}, "audio_rate": {"type": ["integer", "null"]},
            "rotation": {"type": "integer"}, "format": {"type": "string"}, "has_audio": {"type": "boolean"},
        },
        "additionalProperties": True,
    },
    "Upload": {
        "type": "object", "required": ["filename", "url", "metadata"],
        "properties": {"filename": {"type": "string"}, "url": {"type": "string"},
                       "metadata": {"$ref": "#/components/schemas/Metadata"}},
    },
    "Session": {
        "type": "object",
        "properties": {"id": {"type": "string", "format": "uuid"},
                       "settings": {"$ref": "#/components/schemas/SessionSettings"},
                       "recentProjects": {"type": "array", "items": {"type": "object"}}},
        "additionalProperties": True,
    },
    "SessionSettings": {
        "type": "object",
        "properties": {
            "theme": {"enum": ["system", "light", "dark"]}, "language": {"type": "string", "maxLength": 35},
            "volume": {"type": "number", "minimum": 0, "maximum": 1}, "muted": {"type": "boolean"},
            "autoSave": {"type": "boolean"}, "snapToMarkers": {"type": "boolean"},
            "timelineZoom": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
        },
        "additionalProperties": False,
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
FILENAME = path_param("filename", {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]*$"})
UPLOAD_ID = path_param("id", {"type": "string"})
TUS_RESUMABLE = {"name": "Tus-Resumable", "in": "header", "required": True, "schema": {"const": "1.0.0"}}
_NOT_MODIFIED = {"description": "Not modified (If-None-Match)"}
_STATIC_FILE = {"description": "The file (ETag; Cache-Control: no-cache)",
                "content": {"text/javascript": {}, "text/css": {}, "text/html": {}}}
_VIDEO = {"description": "The file, or the requested byte range",
          "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}}
_SESSION = _json({"$ref": "#/components/schemas/Session"}, "The session; sets the nve_session cookie")

PATHS: dict[str, dict[str, Any]] = {
    "/": {"get": _op("The web editor page", {
        "200": {"description": "The editor (HTML)", "content": {"text/html": {}}}, "304": _NOT_MODIFIED},
        tags=["ui"])},
    "/static/{file}": {"get": _op("A file of the web UI", {
        "200": _STATIC_FILE, "304": _NOT_MODIFIED, "404": _error("No such file")},
        params=[path_param("file", {"type": "string"})], tags=["ui"])},
    "/static/{dir}/{file}": {"get": _op("A file of the web UI in a folder (js/, css/)", {
        "200": _STATIC_FILE, "304": _NOT_MODIFIED, "404": _error("No such file")},
        params=[path_param("dir", {"type": "string"}), path_param("file", {"type": "string"})], tags=["ui"])},
    "/metrics": {"get": _op("Prometheus metrics (text exposition format)", {
        "200": {"description": "Metrics", "content": {"text/plain": {}}}}, tags=["ops"])},
    "/api/upload": {"post": {
        "summary": "Upload a video (multipart/form-data, field `video`), streamed to disk",
        "tags": ["media"],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["video"],
            "properties": {"video": {"type": "string", "format": "binary"}}}}}},
        "responses": {"201": _json({"$ref": "#/components/schemas/Upload"}, "Stored and probed"),
                      "400": _error("Not multipart, or no `video` field"), "413": _error("Over the size limit"),
                      "415": _error("Not a video"), "422": _error("A corrupt video"),
                      "429": _error("Rate limited")}}},
    "/videos/{filename}": {"get": _op("A media file, with Range (206), ETag and If-None-Match (304)", {
        "200": _VIDEO, "206": _VIDEO, "304": _NOT_MODIFIED, "404": _error("Unknown file"),
        "416": _error("Range not satisfiable")}, params=[FILENAME], tags=["media"])},
    "/api/metadata/{filename}": {"get": _op("Probed metadata (cached in Redis for an hour)", {
        "200": _json({"$ref": "#/components/schemas/Metadata"}, "Metadata"), "404": _error("Unknown file"),
        "422": _error("Unreadable media")}, params=[FILENAME], tags=["media"])},
    "/api/videos/{filename}/thumbnails": {"get": _op("Timeline filmstrip: sprite URL and frame times", {
        "200": _json({"type": "object"}, "Filmstrip"), "400": _error("Bad count"), "404": _error("Unknown file")},
        params=[FILENAME, query_param("count", {"type": "integer", "minimum": 1, "default": 10})],
        tags=["media"])},
    "/api/videos/{filename}/thumbnails.jpg": {"get": _op("The filmstrip sprite (JPEG)", {
        "200": {"description": "Sprite", "content": {"image/jpeg": {}}}, "304": _NOT_MODIFIED,
        "404": _error("Unknown file")},
        params=[FILENAME, query_param("count", {"type": "integer", "minimum": 1, "default": 10})],
        tags=["media"])},
    "/api/videos/{filename}/waveform": {"get": _op("Waveform peaks for the timeline", {
        "200": _json({"type": "object"}, "Peaks"), "400": _error("Bad peaks"), "404": _error("Unknown file")},
        params=[FILENAME, query_param("peaks", {"type": "integer", "minimum": 1, "default": 1000})],
        tags=["media"])},
    "/api/session": {"get": _op("The caller's session (created on first use)", {"200": _SESSION},
                                tags=["sessions"])},
    "/api/session/settings": {"put": _op("Change session settings (given fields only)", {
        "200": _SESSION, "400": _error("Invalid setting"), "429": _error("Rate limited")},
        body={"$ref": "#/components/schemas/SessionSettings"}, tags=["sessions"])},

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
            params=[query_param("limit", {"type": "integer", "minimum": 1, "default": 50,
                                         "description": "Page size; more than 200 gets 200"}),
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


def _tus_paths() -> dict[str, dict[str, Any]]:
    """tus 1.0 (core, creation, termination, checksum) at /api/uploads/."""
    def tus(summary: str, responses: dict[str, Any], params: list[dict[str, Any]]) -> dict[str, Any]:
        return _op(summary, responses, params=params, tags=["tus"])

    collection = {
        "options": tus("tus capabilities", {"204": {"description": "Tus-Version, Tus-Extension, Tus-Max-Size"}},
                       []),
        "post": tus("Create an upload (Upload-Length, Upload-Metadata)", {
            "201": {"description": "Created; Location names the upload"}, "400": _error("Bad headers"),
            "412": _error("Unsupported Tus-Resumable"), "413": _error("Over Tus-Max-Size"),
            "429": _error("Rate limited")}, [TUS_RESUMABLE]),
    }
    return {
        "/api/uploads": collection,
        "/api/uploads/": collection,
        "/api/uploads/{id}": {
            "options": tus("tus capabilities", {"204": {"description": "Capabilities"}}, [UPLOAD_ID]),
            "get": tus("Upload-Offset (HEAD) or the upload's status as JSON (GET)", {
                "200": _json({"type": "object"}, "Status"), "404": _error("Unknown upload")}, [UPLOAD_ID]),
            "patch": {**tus("Append bytes at Upload-Offset (application/offset+octet-stream)", {
                "204": {"description": "Appended; the new Upload-Offset"}, "409": _error("Offset mismatch"),
                "415": _error("Wrong Content-Type, or the finished upload is not a video"),
                "423": _error("Upload locked by another request"), "460": _error("Checksum mismatch")},
                [UPLOAD_ID, TUS_RESUMABLE]),
                "requestBody": {"required": True, "content": {"application/offset+octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}}},
            "delete": tus("Terminate an upload", {"204": {"description": "Removed"},
                                                  "404": _error("Unknown upload")}, [UPLOAD_ID, TUS_RESUMABLE]),
        },
    }


PATHS.update(_tus_paths())

JOB_SCHEMAS = {
    "Accepted": {
        "type": "object", "required": ["operationId", "operation", "status"],
        "properties": {"operationId": {"type": "string", "examples": ["trim-5f0c..."]},
                       "operation": {"enum": ["trim", "split", "process"]},
                       "status": {"enum": ["queued", "running", "done", "failed", "cancelled"]}},
    },
    "TrimRequest": {
        "type": "object", "required": ["filename", "startTime", "endTime"],
        "properties": {"filename": {"type": "string"}, "startTime": {"type": "number", "minimum": 0},
                       "endTime": {"type": "number", "minimum": 0},
                       "mode": {"enum": ["copy", "accurate"], "default": "copy"}},
    },
    "SplitRequest": {
        "type": "object", "required": ["filename", "splitTime"],
        "properties": {"filename": {"type": "string"}, "splitTime": {"type": "number", "exclusiveMinimum": 0},
                       "mode": {"enum": ["copy", "accurate"], "default": "copy"}},
    },
    "ProcessRequest": {
        "type": "object",
        "description": "Either projectId (its video and timelineState.edits) or filename with edits.",
        "properties": {"projectId": {"type": "integer"}, "filename": {"type": "string"},
                       "edits": {"type": "array", "items": {"$ref": "#/components/schemas/EditOperation"}},
                       "output": {"type": "string", "maxLength": 100,
                                  "description": "The result file's name starts with this"}},
    },
    "OutputFile": {
        "type": "object", "required": ["filename", "url", "duration"],
        "properties": {"filename": {"type": "string"}, "url": {"type": "string"}, "duration": {"type": "number"}},
    },
    "Job": {
        "type": "object",
        "required": ["operationId", "operation", "status", "progress", "attempts", "maxAttempts",
                     "cancelRequested", "createdAt", "updatedAt"],
        "properties": {
            "operationId": {"type": "string"}, "operation": {"enum": ["trim", "split", "process"]},
            "status": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
            "progress": {"type": "number", "minimum": 0, "maximum": 100},
            "message": {"type": ["string", "null"]},
            "result": {"allOf": [{"$ref": "#/components/schemas/OutputFile"}],
                       "description": "When done; trim adds cut {start, end}, split adds parts and cut {at}",
                       "additionalProperties": True},
            "error": {"type": "string", "description": "When failed or cancelled"},
            "attempts": {"type": "integer"}, "maxAttempts": {"type": "integer"},
            "cancelRequested": {"type": "boolean"},
            "createdAt": {"type": "string", "format": "date-time"},
            "updatedAt": {"type": "string", "format": "date-time"},
            "startedAt": {"type": ["string", "null"], "format": "date-time"},
            "finishedAt": {"type": ["string", "null"], "format": "date-time"},
        },
    },
}

IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": {"type": "string", "maxLength": 255},
                   "description": "A key used before returns the job it created"}
OPERATION_ID = path_param("operationId", {"type": "string"})


def _edit(summary: str, body: str) -> dict[str, Any]:
    return {"post": _op(summary, {
        "202": _json({"$ref": "#/components/schemas/Accepted"}, "Queued"),
        "400": _error("A field is missing or invalid (named in 'field')"),
        "404": _error("Unknown video or project")},
        body={"$ref": f"#/components/schemas/{body}"}, params=[IDEMPOTENCY_KEY], tags=["jobs"])}


JOB_PATHS = {
    "/api/edit/trim": _edit("Trim a video to [startTime, endTime)", "TrimRequest"),
    "/api/edit/split": _edit("Split a video in two at splitTime", "SplitRequest"),
    "/api/edit/process": _edit("Render an edit list into one MP4", "ProcessRequest"),
    "/api/jobs/{operationId}": {"get": _op("A job's state", {
        "200": _json({"$ref": "#/components/schemas/Job"}, "The job"),
        "404": _error("Unknown job")}, params=[OPERATION_ID], tags=["jobs"])},
    "/api/jobs/{operationId}/cancel": {"post": _op("Cancel a queued or running job", {
        "200": _json({"$ref": "#/components/schemas/Job"}, "Cancelled (it was queued)"),
        "202": _json({"$ref": "#/components/schemas/Job"}, "Its worker was asked to stop (it was running)"),
        "404": _error("Unknown job"), "409": _error("Already finished (jobStatus says how)")},
        params=[OPERATION_ID], tags=["jobs"])},
}

SCHEMAS.update(JOB_SCHEMAS)
PATHS.update(JOB_PATHS)
PATHS["/ws"] = {"get": _op("WebSocket upgrade: live job progress (CONTRACT.md section 3)", {
    "101": {"description": "Switching Protocols"}, "400": _error("Bad handshake"),
    "403": _error("Origin not allowed"), "426": _error("Unsupported WebSocket version")}, tags=["realtime"])}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "native-video-editor", "version": "0.1.0",
                 "description": "Video-editor backend: projects, media, jobs, sessions. "
                                "WebSocket progress at /ws (see CONTRACT.md section 3)."},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }
