"""The OpenAPI 3.1 description of the REST API, served at /api/openapi.json.

Written as data rather than derived from handler signatures: the contract's shapes
(camelCase in, snake_case rows out, the error envelope) are the product, and a test
checks that every route on the router is described here and nothing else is. Limits and
patterns are taken from the modules that enforce them, so the document cannot drift from
the server; tests/hostile/test_schemathesis.py runs Schemathesis against it.

Every operation lists every status it can answer besides 401/403 (auth), 405 (a method
the path does not have), 431 (request head over 16 KiB) and 500 (a bug: no test allows
one); error bodies are always the ``Error`` envelope.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from core import storage
from core.config import Settings
from core.jobs.operations import OPERATIONS, OUTPUT_MAX
from core.media.filmstrip import MAX_COUNT
from core.media.trim import MODES
from core.media.waveform import DEFAULT_PEAKS, MAX_PEAKS
from core.projects import DEFAULT_PAGE, FILENAME_MAX, MAX_ID, MAX_PAGE, NAME_MAX
from core.sessions import Settings as SessionSettings
from core.timeline import GAIN_RANGE, SPEED_RANGE
from server.idempotency import MAX_IDEMPOTENCY_KEY
from server.handlers.static import CONTENT_TYPES as STATIC_CONTENT_TYPES
from server.http.request import MAX_JSON_DEPTH
from server.tus import CHECKSUM_ALGORITHMS, TUS_VERSION

ERROR = {"$ref": "#/components/schemas/Error"}
_DEFAULTS = Settings()


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(ERROR, description)


# Answers many operations share.
JSON_BODY = {
    "400": _error("A field is missing or invalid (named in 'field'), or the body is not JSON this server "
                  f"accepts (malformed, invalid UTF-8, nested over {MAX_JSON_DEPTH} levels, U+0000, "
                  "a number past float range)"),
    "413": _error(f"Body over {_DEFAULTS.json_body_limit} bytes"),
    "415": _error("Content-Type is not application/json"),
}
RATE_LIMITED = {"429": {**_error("Too many requests from this client (Retry-After says when to retry)"),
                        "headers": {"Retry-After": {"schema": {"type": "string"}}}}}
DATABASE = {"503": _error("PostgreSQL is unavailable")}
MEDIA_ERRORS = {"415": _error("Not a video"), "422": _error("A corrupt or unreadable video"),
                "503": _error("The media workers are busy or restarting")}


def _op(summary: str, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, tags: list[str] | None = None) -> dict[str, Any]:
    """An operation; a JSON ``body`` adds its request body and :data:`JSON_BODY`'s answers."""
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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _edit(kind: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """One EditOperation variant: exactly its type's fields (any other is a 400)."""
    return {"type": "object", "required": ["type", *required], "additionalProperties": False,
            "properties": {"type": {"const": kind}, **properties}}


# JSON numbers past float range are refused (core/timeline.is_number), so every number has a maximum.
FLOAT_MAX = sys.float_info.max
SECONDS = {"type": "number", "minimum": 0, "maximum": FLOAT_MAX}
POSITIVE_INT = {"type": "integer", "minimum": 1}
# Strings a client names, free text that PostgreSQL stores: no U+0000 (request.json refuses it).
TEXT = {"type": "string", "pattern": "^[^\\u0000]*$"}
_SESSION_SETTINGS = msgspec.json.schema(SessionSettings)["$defs"]["Settings"]
_TUS_STATE = {"id": {"type": "string"}, "length": {"type": "integer"}, "offset": {"type": "integer"}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
        "additionalProperties": True,
    },
    "FileName": {"type": "string", "pattern": f"^{storage.SAFE_NAME}$",
                 "description": "A file directly in the media directory: [A-Za-z0-9._-], not starting with a dot"},
    "ProjectId": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    "Marker": {
        "type": "object", "required": ["time", "label"],
        "properties": {"time": SECONDS, "label": TEXT},
    },
    "EditOperation": {
        "description": "Cross-field rules the schema cannot state: a range's end is after its start, "
                       "and scale's width and height are not both -1.",
        "oneOf": [
            _edit("trim", {"start": SECONDS, "end": SECONDS}, ["start", "end"]),
            _edit("cut", {"start": SECONDS, "end": SECONDS}, ["start", "end"]),
            _edit("split", {"at": SECONDS}, ["at"]),
            _edit("speed", {"factor": {"type": "number", "minimum": SPEED_RANGE[0], "maximum": SPEED_RANGE[1]}},
                  ["factor"]),
            _edit("fade", {"in": SECONDS, "out": SECONDS}, []),
            _edit("volume", {"gain": {"type": "number", "minimum": GAIN_RANGE[0], "maximum": GAIN_RANGE[1]}},
                  ["gain"]),
            _edit("scale", {"width": {"anyOf": [POSITIVE_INT, {"const": -1}]},
                            "height": {"anyOf": [POSITIVE_INT, {"const": -1}]}}, ["width", "height"]),
            _edit("crop", {"x": {"type": "integer", "minimum": 0}, "y": {"type": "integer", "minimum": 0},
                           "width": POSITIVE_INT, "height": POSITIVE_INT}, ["x", "y", "width", "height"]),
        ],
    },
    "TimelineState": {
        "type": "object",
        "description": "Unknown keys are kept as given. As in any JSON body, arrays and objects nest at "
                       f"most {MAX_JSON_DEPTH} levels (counting the body itself) and no string holds U+0000.",
        "properties": {
            "currentTime": SECONDS,
            "zoom": {"type": "number", "exclusiveMinimum": 0, "maximum": FLOAT_MAX},
            "markers": {"type": "array", "items": _ref("Marker")},
            "edits": {"type": "array", "items": _ref("EditOperation")},
        },
        "additionalProperties": True,
    },
    "Project": {
        "type": "object",
        "required": ["id", "name", "description", "video_filename", "video_url", "timeline_state",
                     "version", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string", "maxLength": NAME_MAX},
            "description": {"type": ["string", "null"]},
            "video_filename": {"type": "string"},
            "video_url": {"type": "string"},
            "timeline_state": _ref("TimelineState"),
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
            "start_time": {"type": "number", "description": "Container clock (s) of timeline 0, the first "
                           "presented frame: every time in the API is on this timeline"},
            "audio_offset": {"type": ["number", "null"], "description": "Timeline second where the audio starts"},
            "display_width": {"type": "integer"}, "display_height": {"type": "integer"},
            "display_aspect": {"type": "string"}, "sample_aspect": {"type": "string"},
            "pix_fmt": {"type": ["string", "null"]}, "frames": {"type": "integer"},
            "keyframes": {"type": "integer"}, "keyframe_interval": {"type": "number"},
            "intra_only": {"type": "boolean"}, "vfr": {"type": "boolean"},
            "header_duration": {"type": ["number", "null"]}, "browser_playable": {"type": "boolean"},
            "preview": _ref("Preview"),
        },
        "additionalProperties": True,
    },
    "Preview": {
        "type": "object", "required": ["status", "url", "operationId"],
        "description": "Where a browser plays the video: the source itself, or its H.264/AAC proxy "
                       "(made by the ingest job operationId; 404 at url until it is ready)",
        "properties": {"status": {"enum": ["source", "pending", "ready", "failed"]},
                       "url": {"type": "string"}, "operationId": {"type": ["string", "null"]},
                       "error": {"type": "string", "description": "Why the proxy could not be made (failed)"}},
    },
    "Upload": {
        "type": "object", "required": ["filename", "url", "metadata"],
        "properties": {"filename": {"type": "string"}, "url": {"type": "string"},
                       "metadata": _ref("Metadata")},
    },
    "Session": {
        "type": "object",
        "properties": {"settings": _ref("SessionSettings"),
                       "recentProjects": {"type": "array", "items": {"type": "object"}}},
        "additionalProperties": True,
    },
    "SessionSettings": {key: value for key, value in _SESSION_SETTINGS.items() if key != "title"},
    "NewProject": {
        "type": "object",
        "required": ["name", "videoFilename", "videoUrl"],
        "properties": {
            "name": {**TEXT, "minLength": 1, "maxLength": NAME_MAX},
            "description": {"type": ["string", "null"], "pattern": TEXT["pattern"]},
            "videoFilename": {**TEXT, "minLength": 1, "maxLength": FILENAME_MAX},
            "videoUrl": {**TEXT, "minLength": 1},
            "timelineState": {"anyOf": [_ref("TimelineState"), {"type": "null"}],
                              "description": "Absent or null: an empty timeline"},
        },
    },
    "ProjectChanges": {
        "type": "object",
        "properties": {
            "name": {**TEXT, "minLength": 1, "maxLength": NAME_MAX},
            "description": {"type": ["string", "null"], "pattern": TEXT["pattern"]},
            "timelineState": _ref("TimelineState"),
        },
    },
    "Filmstrip": {
        "type": "object", "required": ["sprite", "times"],
        "properties": {"sprite": {"type": "string"}, "times": {"type": "array", "items": {"type": "number"}}},
        "additionalProperties": True,
    },
    "Waveform": {
        "type": "object", "required": ["peaks"],
        "properties": {"peaks": {"type": "array", "items": {"type": "number"}}},
        "additionalProperties": True,
    },
    # A component of its own, not inline in TusUpload: openapi-python-client generates the
    # inline object twice under one name and drops it.
    "UploadMetadata": {"description": "The Upload-Metadata of an upload in progress, decoded",
                       "type": "object", "additionalProperties": {"type": "string"}},
    "TusUpload": {
        "description": "While in progress, `metadata` is the Upload-Metadata given; once complete, the "
                       "stored video's {filename, url, metadata} take the place of it",
        "oneOf": [
            {"type": "object", "required": ["id", "length", "offset", "metadata", "complete"],
             "properties": {**_TUS_STATE, "complete": {"const": False},
                            "metadata": _ref("UploadMetadata")}},
            {"type": "object", "required": ["id", "length", "offset", "metadata", "complete", "filename", "url"],
             "properties": {**_TUS_STATE, "complete": {"const": True}, "filename": {"type": "string"},
                            "url": {"type": "string"}, "metadata": _ref("Metadata")}},
        ],
    },
}

PROJECT = _ref("Project")
FILENAME = path_param("filename", _ref("FileName"))
UPLOAD_ID = path_param("id", {"type": "string", "pattern": "^[0-9a-f]{32}$"})
# Header values that must be one string are written `enum: [value]`, not `const` (the same in
# JSON Schema): openapi-python-client drops every operation with a `const` header.
TUS_RESUMABLE = header("Tus-Resumable", {"type": "string", "enum": [TUS_VERSION]},
                       description="Absent or another version: 412, as tus 1.0 says")
_NOT_MODIFIED = {"description": "Not modified (If-None-Match, or without it If-Modified-Since)"}
_STATIC_FILE = {"description": "The file (ETag; Cache-Control: no-cache)",
                "content": {kind.split(";")[0]: {} for kind in {*STATIC_CONTENT_TYPES.values(),
                                                                 "application/octet-stream"}}}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_MEDIA_FILE = {"description": "The file, or the requested byte range",
               "content": {kind: _BINARY for kind in {*storage.CONTENT_TYPES.values(), "application/octet-stream"}}}
_SPRITE = {"description": "Sprite, or the requested byte range", "content": {"image/jpeg": _BINARY}}
_UNSATISFIABLE = _error("Range not satisfiable (Content-Range: bytes */size)")
_SESSION = _json(_ref("Session"), "The session; sets the nve_session cookie")
_COUNT = query_param("count", {"type": "integer", "minimum": 1, "maximum": MAX_COUNT, "default": 10})


def _bad_query(name: str, high: int) -> dict[str, Any]:
    return _error(f"Query parameter '{name}' is not an integer from 1 to {high}")


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
        "responses": {"201": _json(_ref("Upload"), "Stored and probed"),
                      "400": _error("Not multipart, malformed, or no `video` field"),
                      "413": _error(f"Over the upload limit ({_DEFAULTS.upload_limit} bytes)"),
                      **MEDIA_ERRORS, **RATE_LIMITED, **DATABASE}}},
    "/videos/{filename}": {"get": _op("A media file, with Range (206), ETag and conditional GETs (304)", {
        "200": _MEDIA_FILE, "206": _MEDIA_FILE, "304": _NOT_MODIFIED,
        "404": _error("Unknown file (or not a plain name of a regular file: no path, no symlink)"),
        "416": _UNSATISFIABLE}, params=[FILENAME], tags=["media"])},
    "/api/metadata/{filename}": {"get": _op("Probed metadata (cached in Redis for an hour)", {
        "200": _json(_ref("Metadata"), "Metadata"), "404": _error("Unknown file"), **MEDIA_ERRORS},
        params=[FILENAME], tags=["media"])},
    "/api/videos/{filename}/thumbnails": {"get": _op("Timeline filmstrip: sprite URL and frame times", {
        "200": _json(_ref("Filmstrip"), "Filmstrip"), "400": _bad_query("count", MAX_COUNT),
        "404": _error("Unknown file"), **MEDIA_ERRORS}, params=[FILENAME, _COUNT], tags=["media"])},
    "/api/videos/{filename}/thumbnails.jpg": {"get": _op("The filmstrip sprite (JPEG), with Range and ETag", {
        "200": _SPRITE, "206": _SPRITE, "304": _NOT_MODIFIED, "400": _bad_query("count", MAX_COUNT),
        "404": _error("Unknown file"), "416": _UNSATISFIABLE, **MEDIA_ERRORS},
        params=[FILENAME, _COUNT], tags=["media"])},
    "/api/videos/{filename}/preview": {"get": _op("The browser proxy (H.264/AAC MP4), with Range and ETag", {
        "200": _MEDIA_FILE, "206": _MEDIA_FILE, "304": _NOT_MODIFIED,
        "404": _error("Unknown file, or its proxy is not made yet"), "416": _UNSATISFIABLE},
        params=[FILENAME], tags=["media"])},
    "/api/videos/{filename}/waveform": {"get": _op("Waveform peaks for the timeline", {
        "200": _json(_ref("Waveform"), "Peaks"), "400": _bad_query("peaks", MAX_PEAKS),
        "404": _error("Unknown file"), **MEDIA_ERRORS},
        params=[FILENAME, query_param("peaks", {"type": "integer", "minimum": 1, "maximum": MAX_PEAKS,
                                                "default": DEFAULT_PEAKS})],
        tags=["media"])},
    "/api/session": {"get": _op("The caller's session (created on first use)", {
        "200": _SESSION, "503": _error("Neither Redis nor PostgreSQL can store sessions right now")},
        tags=["sessions"])},
    "/api/session/settings": {"put": _op("Change session settings (given fields only)", {
        "200": _SESSION, "503": _error("Neither Redis nor PostgreSQL can store sessions right now"),
        **RATE_LIMITED},
        body=_ref("SessionSettings"), tags=["sessions"])},

    "/healthz": {"get": _op("Liveness", {"200": _json({"type": "object"}, "Alive")}, tags=["ops"])},
    "/readyz": {"get": _op("Readiness: PostgreSQL reachable, other services reported", {
        "200": _json({"type": "object"}, "Ready"), "503": _error("PostgreSQL unreachable")}, tags=["ops"])},
    "/api/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                                     tags=["ops"])},
    "/api/projects": {
        "post": _op("Create a project", {
            "201": _json(PROJECT, "Created"), **RATE_LIMITED, **DATABASE},
            body=_ref("NewProject"), tags=["projects"]),
        "get": _op("List projects, most recently updated first", {
            "200": {**_json({"type": "array", "items": PROJECT}, "A page of projects"),
                    "headers": {"X-Next-Cursor": {"schema": {"type": "string"},
                                                  "description": "Cursor of the next page, when there is one"}}},
            "400": _error("Bad limit, or a cursor this server did not issue"), **DATABASE},
            params=[query_param("limit", {"type": "integer", "minimum": 1, "default": DEFAULT_PAGE,
                                         "description": f"Page size; more than {MAX_PAGE} gets {MAX_PAGE}"}),
                    query_param("cursor", {"type": "string", "description": "X-Next-Cursor of the page before"})],
            tags=["projects"]),
    },
    "/api/projects/{id}": {
        "get": _op("One project (ETag: its version; If-None-Match naming it: 304)", {
            "200": _json(PROJECT, "The project"), "304": {"description": "Not modified (If-None-Match)"},
            "400": _error("Non-integer id"), "404": _error("Unknown id"),
            **DATABASE}, params=[path_param("id", _ref("ProjectId"))], tags=["projects"]),
        "put": _op("Change name, description or timeline; If-Match for optimistic concurrency", {
            "200": _json(PROJECT, "The updated project"), "404": _error("Unknown id"),
            "412": _json({"allOf": [PROJECT, ERROR]}, "Stale If-Match: the current row, plus error"),
            **RATE_LIMITED, **DATABASE},
            body=_ref("ProjectChanges"),
            params=[path_param("id", _ref("ProjectId")), header("If-Match", {"type": "string"}, required=False)],
            tags=["projects"]),
        "delete": _op("Delete a project", {
            "204": {"description": "Deleted"}, "400": _error("Non-integer id"), "404": _error("Unknown id"),
            **RATE_LIMITED, **DATABASE}, params=[path_param("id", _ref("ProjectId"))], tags=["projects"]),
    },
}


def _tus_paths() -> dict[str, dict[str, Any]]:
    """tus 1.0 (core, creation, creation-with-upload, expiration, termination, checksum) at /api/uploads/."""
    def tus(summary: str, responses: dict[str, Any], params: list[dict[str, Any]]) -> dict[str, Any]:
        version = {"412": _error(f"Tus-Resumable is absent or not {TUS_VERSION}")} if TUS_RESUMABLE in params else {}
        return _op(summary, {**responses, **version}, params=params, tags=["tus"])

    unknown = {"404": _error("Unknown upload")}
    # Upload-Offset and Upload-Length are at most 19 digits (server/tus.parse_offset).
    max_offset = 10**19 - 1
    base64 = "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
    checksum = f"^(?:{'|'.join(CHECKSUM_ALGORITHMS)})(?: \\s*{base64})?\\s*$"
    locked = {"423": _error("Upload locked by another request")}
    collection = {
        "options": tus("tus capabilities", {"204": {"description": "Tus-Version, Tus-Extension, Tus-Max-Size"}},
                       []),
        "post": {**tus("Create an upload (Upload-Length, Upload-Metadata), with its first bytes if "
                       "the body is application/offset+octet-stream (creation-with-upload)", {
            "201": {"description": "Created; Location names the upload, Upload-Offset what was taken"},
            "400": _error("Bad Upload-Length or Upload-Metadata, or Upload-Defer-Length (unsupported)"),
            "413": _error("Over Tus-Max-Size, or a body longer than Upload-Length"),
            **MEDIA_ERRORS, "415": _error("An empty upload, or a filetype that is not a video"),
            "460": _error("Checksum mismatch of the first bytes"), **RATE_LIMITED},
            [TUS_RESUMABLE,
             header("Upload-Length", {"type": "integer", "minimum": 1, "maximum": _DEFAULTS.upload_limit}),
             header("Upload-Metadata", {"type": "string"}, required=False,
                    description="Comma-separated `key base64(UTF-8 value)`: filename, filetype, operationId")]),
            # The optional body (creation-with-upload) is left out of the schema: a valid one
            # must not be longer than Upload-Length, which a schema cannot say.
        },
    }
    # Both spellings of the collection are routes. Without operationIds, generators name an
    # operation after its method and path, and the two spellings then give one name (the
    # second overwriting the first in openapi-python-client's output).
    def named(suffix: str) -> dict[str, Any]:
        return {method: {**operation, "operationId": f"tus{method.capitalize()}{suffix}"}
                for method, operation in collection.items()}

    return {
        "/api/uploads": named("Uploads"),
        "/api/uploads/": named("UploadsSlash"),
        "/api/uploads/{id}": {
            "options": tus("tus capabilities (whatever the id)", {"204": {"description": "Capabilities"}},
                           [path_param("id", {"type": "string"})]),
            "get": tus("Upload-Offset (HEAD) or the upload's status as JSON (GET)", {
                "200": _json(_ref("TusUpload"), "Status"), **unknown}, [UPLOAD_ID, TUS_RESUMABLE]),
            "patch": {**tus("Append bytes at Upload-Offset (application/offset+octet-stream)", {
                "204": {"description": "Appended; the new Upload-Offset"},
                "400": _error("Bad Upload-Offset or Upload-Checksum"), **unknown,
                "409": _error("Offset mismatch"),
                "413": _error("The body is longer than what remains of the upload"),
                **MEDIA_ERRORS, "415": _error("Wrong Content-Type, or the finished upload is not a video"),
                **locked, "460": _error("Checksum mismatch")},
                [UPLOAD_ID, TUS_RESUMABLE,
                 header("Upload-Offset", {"type": "integer", "minimum": 0, "maximum": max_offset}),
                 header("Upload-Checksum", {"type": "string", "pattern": checksum}, required=False,
                        description="`<algorithm> <base64 digest>`, the algorithm one of "
                                    + ", ".join(CHECKSUM_ALGORITHMS))]),
                "requestBody": {"required": True, "content": {"application/offset+octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}}},
            "delete": tus("Terminate an upload", {"204": {"description": "Removed"}, **unknown, **locked},
                          [UPLOAD_ID, TUS_RESUMABLE]),
        },
    }


PATHS.update(_tus_paths())

STATUSES = ["queued", "running", "done", "failed", "cancelled"]
JOB_SCHEMAS = {
    "Accepted": {
        "type": "object", "required": ["operationId", "operation", "status"],
        "properties": {"operationId": {"type": "string", "examples": ["trim-5f0c..."]},
                       "operation": {"enum": list(OPERATIONS)},
                       "status": {"enum": STATUSES}},
    },
    "TrimRequest": {
        "type": "object", "required": ["filename", "startTime", "endTime"],
        "description": "endTime must be greater than startTime (a 400 otherwise).",
        "properties": {"filename": _ref("FileName"), "startTime": SECONDS, "endTime": SECONDS,
                       "mode": {"enum": list(MODES), "default": "copy"}},
    },
    "SplitRequest": {
        "type": "object", "required": ["filename", "splitTime"],
        "properties": {"filename": _ref("FileName"),
                       "splitTime": {"type": "number", "exclusiveMinimum": 0, "maximum": FLOAT_MAX},
                       "mode": {"enum": list(MODES), "default": "copy"}},
    },
    "ProcessRequest": {
        "type": "object",
        "description": "Either projectId (its video and timelineState.edits; filename and edits are then "
                       "ignored) or filename with edits.",
        # allOf around the anyOf (the same constraint): openapi-python-client takes a schema
        # with a top-level anyOf for a union of its branches, and makes this body untyped.
        "allOf": [{"anyOf": [{"required": ["projectId"]}, {"required": ["filename", "edits"]}]}],
        "properties": {"projectId": _ref("ProjectId"), "filename": _ref("FileName"),
                       "edits": {"type": "array", "items": _ref("EditOperation")},
                       "output": {"type": "string", "pattern": f"^{storage.SAFE_NAME}$", "maxLength": OUTPUT_MAX,
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
            "operationId": {"type": "string"}, "operation": {"enum": list(OPERATIONS)},
            "status": {"enum": STATUSES},
            "progress": {"type": "number", "minimum": 0, "maximum": 100},
            "message": {"type": ["string", "null"]},
            "result": {"allOf": [_ref("OutputFile")],
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

IDEMPOTENCY_KEY = header("Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY,
                                             "pattern": "\\S"},
                         required=False, description="A key used before returns what it created "
                                                     "(with Idempotent-Replayed: true)")
OPERATION_ID = path_param("operationId", {"type": "string"})
PATHS["/api/projects"]["post"]["parameters"] = [IDEMPOTENCY_KEY]
PATHS["/api/projects"]["post"]["responses"]["404"] = _error(
    "The project of this Idempotency-Key was deleted while the request ran (once deleted, the key is free)")


def _edit_route(summary: str, body: str) -> dict[str, Any]:
    return {"post": _op(summary, {
        "202": _json(_ref("Accepted"), "Queued"),
        "404": _error("Unknown video or project"), **RATE_LIMITED, **DATABASE},
        body=_ref(body), params=[IDEMPOTENCY_KEY], tags=["jobs"])}


JOB_PATHS = {
    "/api/edit/trim": _edit_route("Trim a video to [startTime, endTime)", "TrimRequest"),
    "/api/edit/split": _edit_route("Split a video in two at splitTime", "SplitRequest"),
    "/api/edit/process": _edit_route("Render an edit list into one MP4", "ProcessRequest"),
    "/api/jobs/{operationId}": {"get": _op("A job's state", {
        "200": _json(_ref("Job"), "The job"),
        "404": _error("Unknown job"), **DATABASE}, params=[OPERATION_ID], tags=["jobs"])},
    "/api/jobs/{operationId}/cancel": {"post": _op("Cancel a queued or running job", {
        "200": _json(_ref("Job"), "Cancelled (it was queued)"),
        "202": _json(_ref("Job"), "Its worker was asked to stop (it was running)"),
        "404": _error("Unknown job"), "409": _error("Already finished (jobStatus says how)"),
        **RATE_LIMITED, **DATABASE},
        params=[OPERATION_ID], tags=["jobs"])},
}

SCHEMAS.update(JOB_SCHEMAS)
PATHS.update(JOB_PATHS)
PATHS["/ws"] = {"get": _op("WebSocket upgrade: live job progress (CONTRACT.md section 3)", {
    "101": {"description": "Switching Protocols"}, "400": _error("Bad handshake"),
    "403": _error("Origin not allowed"),
    "426": _error("Not a WebSocket upgrade, or an unsupported WebSocket version"),
    "503": _error("This server holds its maximum of WebSocket clients")},
    params=[header("Upgrade", {"type": "string", "enum": ["websocket"]}),
            header("Connection", {"type": "string", "enum": ["Upgrade"]}),
            header("Sec-WebSocket-Version", {"type": "string", "enum": ["13"]}),
            header("Sec-WebSocket-Key", {"type": "string", "pattern": "^[A-Za-z0-9+/]{21}[AQgw]==$"},
                   description="base64 of 16 random bytes")],
    tags=["realtime"])}
PATHS["/api/ws/token"] = {"post": _op("A single-use token for a WebSocket 'auth' message (for clients whose "
                                      "handshake carries no credential)", {
    "201": _json({"type": "object", "required": ["token", "expiresIn"], "additionalProperties": False,
                  "properties": {"token": {"type": "string"}, "expiresIn": {"type": "number"}}},
                 "The token; it acts for the caller and is spent by its first use"),
    **RATE_LIMITED, **DATABASE}, tags=["realtime"])}

SECURITY_SCHEMES = {
    "apiKey": {"type": "http", "scheme": "bearer", "description": "A key from `nve apikey create`: its tenant"},
    "session": {"type": "apiKey", "in": "cookie", "name": "nve_session",
                "description": "A browser session (GET / or GET /api/session starts one)"},
}
SECURITY = [{"apiKey": []}, {"session": []}, {}]
"""Any one of them; none is needed by the local user (open mode, or this machine's own clients in auto)."""


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "native-video-editor", "version": "0.1.0",
                 "description": "Video-editor backend: projects, media, jobs, sessions. "
                                "WebSocket progress at /ws (see CONTRACT.md section 3). JSON bodies: UTF-8 "
                                f"(a leading BOM is ignored), at most {_DEFAULTS.json_body_limit} bytes, "
                                f"arrays and objects nested at most {MAX_JSON_DEPTH} levels, no U+0000 "
                                "in strings, the last of duplicate keys wins."},
        "paths": PATHS,
        "security": SECURITY,
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }
