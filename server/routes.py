"""The route table: every endpoint of the server, in one place.

One row per route: method, pattern, handler, body limit, whether dispatch rate-limits it,
who may cache its answers (server/http/caching.py), and its OpenAPI operation, from which
server/apidoc.py derives the published document. Nothing else mounts a route, so this
file is the whole surface of the API; handlers know nothing of their URLs.

A route with no ``doc`` is left out of the document: only the benchmark hook, which
exists only under ``NVE_BENCH=1``.
"""

from __future__ import annotations

from typing import Any

from core.config import Settings
from core.media.filmstrip import MAX_COUNT
from core.media.waveform import DEFAULT_PEAKS, MAX_PEAKS
from core.projects import DEFAULT_PAGE, MAX_PAGE
from core.uploads.resumable import CHECKSUM_ALGORITHMS
from core.webhooks.store import NEW_WEBHOOK, ROTATION
from server import apidoc
from server.apidoc import (
    COUNT,
    DATABASE,
    ERROR,
    FILENAME,
    IDEMPOTENCY_KEY,
    MEDIA_ERRORS,
    MEDIA_FILE,
    NOT_MODIFIED,
    OPERATION_ID,
    PROJECT,
    RATE_LIMITED,
    SESSION,
    SPRITE,
    STATIC_FILE,
    TUS_RESUMABLE,
    UNSATISFIABLE,
    UPLOAD_ID,
    bad_query,
    edit_operation,
    error,
    header,
    json_content,
    named,
    operation,
    path_param,
    query_param,
    ref,
    tus_operation,
)
from server.handlers import (
    health,
    jobs,
    metadata,
    metrics,
    openapi,
    projects,
    session,
    static,
    tus,
    uploads,
    videos,
    webhooks,
    websocket,
)
from server.http.caching import LIVE, SHARED
from server.http.routing import Route

MULTIPART_OVERHEAD = 1 << 20
"""Body bytes allowed beyond the upload limit for the multipart framing and other fields."""
MAX_OFFSET = 10**19 - 1
"""Upload-Offset and Upload-Length are at most 19 digits (core/uploads/resumable.py parse_offset)."""
_BASE64 = "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
_UNKNOWN_UPLOAD = {"404": error("Unknown upload")}
_LOCKED = {"423": error("Upload locked by another request")}
_NO_SESSION_STORE = error("Neither Redis nor PostgreSQL can store sessions right now")
_UNKNOWN_WEBHOOK = {"404": error("Unknown webhook (another owner's is unknown too)")}
_WEBHOOK_ID = path_param("id", {"type": "string", "format": "uuid"})
# The router takes at most 18 digits for an integer parameter (server/http/routing.py).
_DELIVERY_ID = path_param("deliveryId", {"type": "integer", "minimum": 1, "maximum": 10**18 - 1})


def route_table(settings: Settings) -> list[Route]:
    """Every route of a server configured by ``settings`` (body limits and the bench hook depend on it)."""
    upload_limit = settings.upload_limit
    # Every route answers per owner (the default cache policy) unless it says otherwise; "/"
    # too, as it may set the session cookie.
    routes = [
        # -- the web UI and operations -------------------------------------------------------
        Route("GET", "/", static.index, doc=operation("The web editor page", {
            "200": {"description": "The editor (HTML)", "content": {"text/html": {}}}, "304": NOT_MODIFIED},
            tags=["ui"])),
        Route("GET", "/static/{file}", static.static_file, cache=SHARED, doc=operation("A file of the web UI", {
            "200": STATIC_FILE, "304": NOT_MODIFIED, "404": error("No such file")},
            params=[path_param("file", {"type": "string"})], tags=["ui"])),
        Route("GET", "/static/{dir}/{file}", static.static_file, cache=SHARED, doc=operation(
            "A file of the web UI in a folder (js/, css/)", {
                "200": STATIC_FILE, "304": NOT_MODIFIED, "404": error("No such file")},
            params=[path_param("dir", {"type": "string"}), path_param("file", {"type": "string"})], tags=["ui"])),
        Route("GET", "/healthz", health.healthz, cache=LIVE, doc=operation(
            "Liveness", {"200": json_content({"type": "object"}, "Alive")}, tags=["ops"])),
        Route("GET", "/readyz", health.readyz, cache=LIVE, doc=operation(
            "Readiness: PostgreSQL reachable, other services reported", {
                "200": json_content({"type": "object"}, "Ready"), "503": error("PostgreSQL unreachable")},
            tags=["ops"])),
        Route("GET", "/metrics", metrics.metrics, cache=LIVE, doc=operation(
            "Prometheus metrics (text exposition format)", {
                "200": {"description": "Metrics", "content": {"text/plain": {}}}}, tags=["ops"])),
        Route("GET", "/api/openapi.json", openapi.openapi_json, cache=SHARED, doc=operation(
            "This document", {"200": json_content({"type": "object"}, "OpenAPI 3.1")}, tags=["ops"])),

        # -- projects --------------------------------------------------------------------------
        Route("POST", "/api/projects", projects.create_project, rate_limited=True, doc=operation(
            "Create a project", {
                "201": json_content(PROJECT, "Created"), **RATE_LIMITED, **DATABASE,
                "404": error("The project of this Idempotency-Key was deleted while the request ran "
                             "(once deleted, the key is free)")},
            body=ref("NewProject"), params=[IDEMPOTENCY_KEY], tags=["projects"])),
        Route("GET", "/api/projects", projects.list_projects, doc=operation(
            "List projects, most recently updated first", {
                "200": {**json_content({"type": "array", "items": PROJECT}, "A page of projects"),
                        "headers": {"X-Next-Cursor": {"schema": {"type": "string"},
                                                      "description": "Cursor of the next page, when there is one"}}},
                "400": error("Bad limit, or a cursor this server did not issue"), **DATABASE},
            params=[query_param("limit", {"type": "integer", "minimum": 1, "default": DEFAULT_PAGE,
                                          "description": f"Page size; more than {MAX_PAGE} gets {MAX_PAGE}"}),
                    query_param("cursor", {"type": "string", "description": "X-Next-Cursor of the page before"})],
            tags=["projects"])),
        Route("GET", "/api/projects/{id:int}", projects.get_project, doc=operation(
            "One project (ETag: its version; If-None-Match naming it: 304)", {
                "200": json_content(PROJECT, "The project"), "304": {"description": "Not modified (If-None-Match)"},
                "400": error("Non-integer id"), "404": error("Unknown id"), **DATABASE},
            params=[path_param("id", ref("ProjectId"))], tags=["projects"])),
        Route("PUT", "/api/projects/{id:int}", projects.update_project, rate_limited=True, doc=operation(
            "Change name, description or timeline; If-Match for optimistic concurrency", {
                "200": json_content(PROJECT, "The updated project"), "404": error("Unknown id"),
                "412": json_content({"allOf": [PROJECT, ERROR]}, "Stale If-Match: the current row, plus error"),
                **RATE_LIMITED, **DATABASE},
            body=ref("ProjectChanges"),
            params=[path_param("id", ref("ProjectId")), header("If-Match", {"type": "string"}, required=False)],
            tags=["projects"])),
        Route("DELETE", "/api/projects/{id:int}", projects.delete_project, rate_limited=True, doc=operation(
            "Delete a project", {
                "204": {"description": "Deleted"}, "400": error("Non-integer id"), "404": error("Unknown id"),
                **RATE_LIMITED, **DATABASE},
            params=[path_param("id", ref("ProjectId"))], tags=["projects"])),

        # -- media -----------------------------------------------------------------------------
        Route("POST", "/api/upload", uploads.upload, body_limit=upload_limit + MULTIPART_OVERHEAD,
              rate_limited=True, doc={
                  "summary": "Upload a video (multipart/form-data, field `video`), streamed to disk",
                  "tags": ["media"],
                  "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                      "type": "object", "required": ["video"],
                      "properties": {"video": {"type": "string", "format": "binary"}}}}}},
                  "responses": {"201": json_content(ref("Upload"), "Stored and probed"),
                                "400": error("Not multipart, malformed, or no `video` field"),
                                "413": error(f"Over the upload limit ({upload_limit} bytes)"),
                                **MEDIA_ERRORS, **RATE_LIMITED, **DATABASE}}),
        Route("GET", "/videos/{filename}", videos.get_video, doc=operation(
            "A media file, with Range (206), ETag and conditional GETs (304)", {
                "200": MEDIA_FILE, "206": MEDIA_FILE, "304": NOT_MODIFIED,
                "404": error("Unknown file (or not a plain name of a regular file: no path, no symlink)"),
                "416": UNSATISFIABLE}, params=[FILENAME], tags=["media"])),
        Route("GET", "/api/metadata/{filename}", metadata.get_metadata, doc=operation(
            "Probed metadata (cached in Redis for an hour)", {
                "200": json_content(ref("Metadata"), "Metadata"), "404": error("Unknown file"), **MEDIA_ERRORS},
            params=[FILENAME], tags=["media"])),
        Route("GET", "/api/videos/{filename}/thumbnails", videos.get_thumbnails, doc=operation(
            "Timeline filmstrip: sprite URL and frame times", {
                "200": json_content(ref("Filmstrip"), "Filmstrip"), "400": bad_query("count", MAX_COUNT),
                "404": error("Unknown file"), **MEDIA_ERRORS}, params=[FILENAME, COUNT], tags=["media"])),
        Route("GET", "/api/videos/{filename}/thumbnails.jpg", videos.get_thumbnail_sprite, doc=operation(
            "The filmstrip sprite (JPEG), with Range and ETag", {
                "200": SPRITE, "206": SPRITE, "304": NOT_MODIFIED, "400": bad_query("count", MAX_COUNT),
                "404": error("Unknown file"), "416": UNSATISFIABLE, **MEDIA_ERRORS},
            params=[FILENAME, COUNT], tags=["media"])),
        Route("GET", "/api/videos/{filename}/waveform", videos.get_waveform, doc=operation(
            "Waveform peaks for the timeline", {
                "200": json_content(ref("Waveform"), "Peaks"), "400": bad_query("peaks", MAX_PEAKS),
                "404": error("Unknown file"), **MEDIA_ERRORS},
            params=[FILENAME, query_param("peaks", {"type": "integer", "minimum": 1, "maximum": MAX_PEAKS,
                                                    "default": DEFAULT_PEAKS})],
            tags=["media"])),
        Route("GET", "/api/videos/{filename}/preview", videos.get_preview, doc=operation(
            "The browser proxy (H.264/AAC MP4), with Range and ETag", {
                "200": MEDIA_FILE, "206": MEDIA_FILE, "304": NOT_MODIFIED,
                "404": error("Unknown file, or its proxy is not made yet"), "416": UNSATISFIABLE},
            params=[FILENAME], tags=["media"])),

        # -- tus 1.0 (core, creation, creation-with-upload, expiration, termination, checksum) --
        *_tus_routes(upload_limit),

        # -- sessions --------------------------------------------------------------------------
        Route("GET", "/api/session", session.get_session, doc=operation(
            "The caller's session (created on first use)", {"200": SESSION, "503": _NO_SESSION_STORE},
            tags=["sessions"])),
        Route("PUT", "/api/session/settings", session.put_settings, rate_limited=True, doc=operation(
            "Change session settings (given fields only)", {
                "200": SESSION, "503": _NO_SESSION_STORE, **RATE_LIMITED},
            body=ref("SessionSettings"), tags=["sessions"])),

        # -- jobs ------------------------------------------------------------------------------
        Route("POST", "/api/edit/trim", jobs.edit_trim, rate_limited=True,
              doc=edit_operation("Trim a video to [startTime, endTime)", "TrimRequest")),
        Route("POST", "/api/edit/split", jobs.edit_split, rate_limited=True,
              doc=edit_operation("Split a video in two at splitTime", "SplitRequest")),
        Route("POST", "/api/edit/process", jobs.edit_process, rate_limited=True,
              doc=edit_operation("Render an edit list into one MP4", "ProcessRequest")),
        Route("GET", "/api/jobs/{operationId}", jobs.get_job, doc=operation("A job's state", {
            "200": json_content(ref("Job"), "The job"), "404": error("Unknown job"), **DATABASE},
            params=[OPERATION_ID], tags=["jobs"])),
        Route("POST", "/api/jobs/{operationId}/cancel", jobs.cancel_job, rate_limited=True, doc=operation(
            "Cancel a queued or running job", {
                "200": json_content(ref("Job"), "Cancelled (it was queued)"),
                "202": json_content(ref("Job"), "Its worker was asked to stop (it was running)"),
                "404": error("Unknown job"), "409": error("Already finished (jobStatus says how)"),
                **RATE_LIMITED, **DATABASE},
            params=[OPERATION_ID], tags=["jobs"])),

        # -- webhooks --------------------------------------------------------------------------
        Route("POST", "/api/webhooks", webhooks.create_webhook, rate_limited=True, doc=operation(
            "Register a webhook endpoint; the answer carries its signing secret, the only time it is shown", {
                "201": json_content(ref("WebhookCreated"), "Registered (Cache-Control: no-store)"),
                **RATE_LIMITED, **DATABASE},
            body=NEW_WEBHOOK.schema(), tags=["webhooks"])),
        Route("GET", "/api/webhooks", webhooks.list_webhooks, doc=operation(
            "The caller's webhook endpoints (without their secrets)", {
                "200": json_content({"type": "array", "items": ref("Webhook")}, "Endpoints, oldest first"),
                **DATABASE}, tags=["webhooks"])),
        Route("GET", "/api/webhooks/{id}", webhooks.get_webhook, doc=operation(
            "One webhook endpoint (without its secret); disabledAt and disabledReason say if and why "
            "deliveries stopped", {
                "200": json_content(ref("Webhook"), "The endpoint"), **_UNKNOWN_WEBHOOK, **DATABASE},
            params=[_WEBHOOK_ID], tags=["webhooks"])),
        Route("DELETE", "/api/webhooks/{id}", webhooks.delete_webhook, rate_limited=True, doc=operation(
            "Delete a webhook endpoint and its deliveries", {
                "204": {"description": "Deleted"}, **_UNKNOWN_WEBHOOK, **RATE_LIMITED, **DATABASE},
            params=[_WEBHOOK_ID], tags=["webhooks"])),
        Route("POST", "/api/webhooks/{id}/rotate", webhooks.rotate_secret, rate_limited=True, doc={
            **operation(
                "A new signing secret; messages carry signatures with both until the old one expires "
                "(the body is optional)", {
                    "200": json_content(ref("WebhookSecret"), "The new secret (Cache-Control: no-store)"),
                    **_UNKNOWN_WEBHOOK, **RATE_LIMITED, **DATABASE},
                body=ROTATION.schema(), params=[_WEBHOOK_ID], tags=["webhooks"]),
            "requestBody": {"required": False, "content": {"application/json": {"schema": ROTATION.schema()}}}}),
        Route("GET", "/api/webhooks/{id}/deliveries", webhooks.list_deliveries, doc=operation(
            "The endpoint's latest 100 deliveries, newest first: status, attempts, last answer, next attempt", {
                "200": json_content({"type": "array", "items": ref("WebhookDelivery")}, "Deliveries"),
                **_UNKNOWN_WEBHOOK, **DATABASE},
            params=[_WEBHOOK_ID], tags=["webhooks"])),
        Route("POST", "/api/webhooks/{id}/deliveries/{deliveryId:int}/redeliver", webhooks.redeliver,
              rate_limited=True, doc=operation(
                  "Send a delivery again: pending now, whatever its status was, with the same webhook-id "
                  "(a disabled endpoint is enabled again)", {
                      "202": json_content(ref("WebhookDelivery"), "Pending again"),
                      "400": error("Non-integer deliveryId"),
                      "404": error("Unknown webhook or delivery (another owner's are unknown too)"),
                      **RATE_LIMITED, **DATABASE},
                  params=[_WEBHOOK_ID, _DELIVERY_ID], tags=["webhooks"])),

        # -- real time -------------------------------------------------------------------------
        Route("GET", "/ws", websocket.websocket, doc=operation(
            "WebSocket upgrade: live job progress (docs/CONTRACT.md section 3)", {
                "101": {"description": "Switching Protocols"}, "400": error("Bad handshake"),
                "403": error("Origin not allowed"),
                "426": error("Not a WebSocket upgrade, or an unsupported WebSocket version"),
                "503": error("This server holds its maximum of WebSocket clients")},
            params=[header("Upgrade", {"type": "string", "enum": ["websocket"]}),
                    header("Connection", {"type": "string", "enum": ["Upgrade"]}),
                    header("Sec-WebSocket-Version", {"type": "string", "enum": ["13"]}),
                    header("Sec-WebSocket-Key", {"type": "string", "pattern": "^[A-Za-z0-9+/]{21}[AQgw]==$"},
                           description="base64 of 16 random bytes")],
            tags=["realtime"])),
        Route("POST", "/api/ws/token", websocket.ws_token, rate_limited=True, doc=operation(
            "A single-use token for a WebSocket 'auth' message (for clients whose handshake carries no "
            "credential)", {
                "201": json_content({"type": "object", "required": ["token", "expiresIn"],
                                     "additionalProperties": False,
                                     "properties": {"token": {"type": "string"}, "expiresIn": {"type": "number"}}},
                                    "The token; it acts for the caller and is spent by its first use"),
                **RATE_LIMITED, **DATABASE}, tags=["realtime"])),
    ]
    if settings.bench:
        routes.append(Route("POST", "/api/_bench/broadcast", websocket.bench_broadcast))
    return routes


def _tus_routes(upload_limit: int) -> list[Route]:
    checksum = f"^(?:{'|'.join(CHECKSUM_ALGORITHMS)})(?: \\s*{_BASE64})?\\s*$"
    options = tus_operation("tus capabilities",
                            {"204": {"description": "Tus-Version, Tus-Extension, Tus-Max-Size"}}, [])
    create = tus_operation(
        "Create an upload (Upload-Length, Upload-Metadata), with its first bytes if the body is "
        "application/offset+octet-stream (creation-with-upload)", {
            "201": {"description": "Created; Location names the upload, Upload-Offset what was taken"},
            "400": error("Bad Upload-Length or Upload-Metadata, or Upload-Defer-Length (unsupported)"),
            "413": error("Over Tus-Max-Size, or a body longer than Upload-Length"),
            **MEDIA_ERRORS, "415": error("An empty upload, or a filetype that is not a video"),
            "460": error("Checksum mismatch of the first bytes"), **RATE_LIMITED},
        [TUS_RESUMABLE,
         header("Upload-Length", {"type": "integer", "minimum": 1, "maximum": upload_limit}),
         header("Upload-Metadata", {"type": "string"}, required=False,
                description="Comma-separated `key base64(UTF-8 value)`: filename, filetype, operationId")])
    # The optional body of a creation (creation-with-upload) is left out of the schema: a
    # valid one must not be longer than Upload-Length, which a schema cannot say.
    routes = []
    # Both spellings of the collection are routes. Without operationIds, generators name an
    # operation after its method and path, and the two spellings then give one name (the
    # second overwriting the first in openapi-python-client's output).
    for base, suffix in (("/api/uploads", "Uploads"), ("/api/uploads/", "UploadsSlash")):
        routes += [
            Route("OPTIONS", base, tus.options, doc=named(f"tusOptions{suffix}", options)),
            Route("POST", base, tus.create, body_limit=upload_limit, rate_limited=True,
                  doc=named(f"tusPost{suffix}", create)),
        ]
    return routes + [
        Route("OPTIONS", "/api/uploads/{id}", tus.options, doc=tus_operation(
            "tus capabilities (whatever the id)", {"204": {"description": "Capabilities"}},
            [path_param("id", {"type": "string"})])),
        # HEAD comes here too.
        Route("GET", "/api/uploads/{id}", tus.head_or_status, doc=tus_operation(
            "Upload-Offset (HEAD) or the upload's status as JSON (GET)", {
                "200": json_content(ref("TusUpload"), "Status"), **_UNKNOWN_UPLOAD}, [UPLOAD_ID, TUS_RESUMABLE])),
        Route("PATCH", "/api/uploads/{id}", tus.patch, body_limit=upload_limit, doc={
            **tus_operation("Append bytes at Upload-Offset (application/offset+octet-stream)", {
                "204": {"description": "Appended; the new Upload-Offset"},
                "400": error("Bad Upload-Offset or Upload-Checksum"), **_UNKNOWN_UPLOAD,
                "409": error("Offset mismatch"),
                "413": error("The body is longer than what remains of the upload"),
                **MEDIA_ERRORS, "415": error("Wrong Content-Type, or the finished upload is not a video"),
                **_LOCKED, "460": error("Checksum mismatch")},
                [UPLOAD_ID, TUS_RESUMABLE,
                 header("Upload-Offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}),
                 header("Upload-Checksum", {"type": "string", "pattern": checksum}, required=False,
                        description="`<algorithm> <base64 digest>`, the algorithm one of "
                                    + ", ".join(CHECKSUM_ALGORITHMS))]),
            "requestBody": {"required": True, "content": {"application/offset+octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}}}),
        Route("DELETE", "/api/uploads/{id}", tus.terminate, doc=tus_operation(
            "Terminate an upload", {"204": {"description": "Removed"}, **_UNKNOWN_UPLOAD, **_LOCKED},
            [UPLOAD_ID, TUS_RESUMABLE])),
    ]


def document(settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI document of a server configured by ``settings`` (the defaults when None)."""
    return apidoc.document(route_table(settings or Settings()))
