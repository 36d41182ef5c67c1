"""``components.schemas`` of the OpenAPI document: every shape the API reads or writes, once.

Request shapes are the tables that check them (core.shapes): TimelineState, Marker and
EditOperation in core.timeline, NewProject and ProjectChanges in core.projects, the edit
requests and FileName in core.jobs.operations, NewWebhook and WebhookRotation in
core.webhooks.store. Their schemas are emitted from those tables, so the document states
exactly the rules the 400s enforce.

Response shapes are written here as JSON Schema: the server builds them (core.jobs.queue's
Job.to_api, core.media's descriptions, server.tus, core.webhooks.store's Endpoint and
Delivery) and never reads them back, so this is their one statement. So is
ProcessRequest's "projectId, or filename with edits": the handler resolves which (a project
id means a database read); its fields are the tables'.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from core.jobs.operations import (
    FILE_NAME,
    OPERATIONS,
    OUTPUT,
    SPLIT_REQUEST,
    TRIM_REQUEST,
)
from core.projects import MAX_ID, NAME_MAX, NEW_PROJECT, PROJECT_CHANGES
from core.sessions import SessionSettings
from core.shapes import Named
from core.timeline import EDIT_OPERATION, EDITS, MARKER, TIMELINE_STATE
from core.webhooks.store import EVENT_TYPES, NEW_WEBHOOK, ROTATION

STATUSES = ["queued", "running", "done", "failed", "cancelled"]

REQUESTS: tuple[Named, ...] = (FILE_NAME, MARKER, EDIT_OPERATION, TIMELINE_STATE, NEW_PROJECT, PROJECT_CHANGES,
                               TRIM_REQUEST, SPLIT_REQUEST, NEW_WEBHOOK, ROTATION)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_SESSION_SETTINGS = msgspec.json.schema(SessionSettings)["$defs"]["SessionSettings"]
_TUS_STATE = {"id": {"type": "string"}, "length": {"type": "integer"}, "offset": {"type": "integer"}}
_TIME = {"type": "string", "format": "date-time"}
_MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}
_SECRET = {"type": "string", "pattern": "^whsec_[A-Za-z0-9+/]{43}=$",
           "description": "The signing secret: whsec_ and base64 of 32 random bytes (the HMAC key). Shown "
                          "only in this answer"}
_WEBHOOK = {
    "id": {"type": "string", "format": "uuid"},
    "url": {"type": "string"},
    "events": {"type": "array", "items": {"type": "string", "enum": list(EVENT_TYPES)}},
    "description": {"type": ["string", "null"]},
    "createdAt": _TIME,
    "disabledAt": {**_MAYBE_TIME, "description": "When deliveries stopped, after too many failed attempts in a "
                   "row; null while enabled"},
    "disabledReason": {"type": ["string", "null"], "description": "Why it was disabled"},
    "consecutiveFailures": {"type": "integer", "minimum": 0,
                            "description": "Failed attempts since the last 2xx"},
    "previousSecretExpiresAt": {**_MAYBE_TIME, "description": "Until then, messages are signed with the "
                                "previous secret too (after a rotation)"},
}

RESPONSES: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
        "additionalProperties": True,
    },
    "ProjectId": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
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
            "timeline_state": TIMELINE_STATE.schema(),
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
    "Accepted": {
        "type": "object", "required": ["operationId", "operation", "status"],
        "properties": {"operationId": {"type": "string", "examples": ["trim-5f0c..."]},
                       "operation": {"enum": list(OPERATIONS)},
                       "status": {"enum": STATUSES}},
    },
    "ProcessRequest": {
        "type": "object",
        "description": "Either projectId (its video and timelineState.edits; filename and edits are then "
                       "ignored) or filename with edits.",
        # allOf around the anyOf (the same constraint): openapi-python-client takes a schema
        # with a top-level anyOf for a union of its branches, and makes this body untyped.
        "allOf": [{"anyOf": [{"required": ["projectId"]}, {"required": ["filename", "edits"]}]}],
        "properties": {"projectId": _ref("ProjectId"), "filename": FILE_NAME.schema(), "edits": EDITS.schema(),
                       "output": {**OUTPUT.schema(), "description": "The result file's name starts with this"}},
    },
    "OutputFile": {
        "type": "object", "required": ["filename", "url", "duration"],
        "properties": {"filename": {"type": "string"}, "url": {"type": "string"}, "duration": {"type": "number"}},
    },
    "Webhook": {"type": "object", "required": list(_WEBHOOK), "properties": _WEBHOOK},
    "WebhookCreated": {"type": "object", "required": [*_WEBHOOK, "secret"],
                       "properties": {**_WEBHOOK, "secret": _SECRET}},
    "WebhookSecret": {
        "type": "object", "required": ["secret", "previousSecretExpiresAt"],
        "properties": {"secret": _SECRET, "previousSecretExpiresAt": {
            **_MAYBE_TIME, "description": "Until then messages carry a signature with the previous secret too "
                                          "(null: overlapSeconds was 0)"}},
    },
    "WebhookDelivery": {
        "type": "object",
        "required": ["id", "eventId", "eventType", "status", "attempts", "lastStatus", "lastError", "lastAttemptAt",
                     "nextAttemptAt", "deliveredAt", "createdAt"],
        "properties": {
            "id": {"type": "integer", "description": "deliveryId, for redeliver"},
            "eventId": {"type": "string", "description": "The message's webhook-id (the same on every attempt)"},
            "eventType": {"type": "string", "enum": list(EVENT_TYPES)},
            "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "attempts": {"type": "integer", "minimum": 0},
            "lastStatus": {"type": ["integer", "null"], "description": "HTTP status of the last attempt"},
            "lastError": {"type": ["string", "null"], "description": "Why the last attempt failed"},
            "lastAttemptAt": _MAYBE_TIME,
            "nextAttemptAt": {**_MAYBE_TIME, "description": "When it is tried next (pending)"},
            "deliveredAt": _MAYBE_TIME,
            "createdAt": _TIME,
        },
    },
    "RenderReport": {
        "type": "object", "required": ["path", "reencodedFrames", "copiedFrames"],
        "description": "How a process job rendered its output (docs/MEDIA.md, Smart and distributed rendering)",
        "properties": {
            "path": {"enum": ["smart", "full", "chunked"],
                     "description": "smart: whole GOPs copied, only frames at cuts and fades re-encoded; full: "
                                    "every frame re-encoded by one worker; chunked: every frame re-encoded, the "
                                    "video split into GOP-aligned chunks rendered by any workers, then joined"},
            "reencodedFrames": {"type": "integer", "minimum": 0, "description": "Video frames encoded"},
            "copiedFrames": {"type": "integer", "minimum": 0,
                             "description": "Video frames copied from the source as they were"},
            "chunks": {"type": "integer", "minimum": 2, "description": "Chunks rendered (chunked)"},
            "reason": {"type": "string", "description": "Why the smart path could not be taken (full, chunked)"},
        },
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
                       "properties": {"render": _ref("RenderReport")},
                       "description": "When done; trim adds cut {start, end}, split adds parts and cut {at}, "
                                      "process adds render (how it was rendered)",
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


EVENT_DATA: dict[str, dict[str, Any]] = {
    "job.completed": _ref("Job"), "job.failed": _ref("Job"), "job.cancelled": _ref("Job"),
    "upload.ready": _ref("Upload"),
    "project.updated": {"type": "object", "required": ["id", "version"],
                        "properties": {"id": {"type": "integer"}, "version": {"type": "integer"}}},
}
"""What each webhook event's ``data`` is: a job's as GET /api/jobs/:id answers, an upload's as
POST /api/upload answers, a project's id and new version."""
assert set(EVENT_DATA) == set(EVENT_TYPES), "every event type has its data's schema"


def webhook_event(event_type: str) -> dict[str, Any]:
    """The body nve POSTs for one event type (Standard Webhooks: type, timestamp, data)."""
    return {"type": "object", "required": ["type", "timestamp", "data"],
            "properties": {"type": {"const": event_type},
                           "timestamp": {"type": "string", "format": "date-time",
                                         "description": "When the event happened (not the attempt)"},
                           "data": EVENT_DATA[event_type]}}


def components(max_json_depth: int) -> dict[str, Any]:
    """The ``components.schemas`` mapping (a new one each call: callers may change it).

    ``max_json_depth`` is the HTTP layer's nesting limit for JSON bodies, which
    TimelineState's description states (a timeline is where deep nesting is plausible).
    """
    schemas: dict[str, Any] = {shape.name: shape.definition() for shape in REQUESTS} | copy.deepcopy(RESPONSES)
    schemas["TimelineState"]["description"] += (
        f" As in any JSON body, arrays and objects nest at most {max_json_depth} levels (counting "
        "the body itself) and no string holds U+0000.")
    return schemas
