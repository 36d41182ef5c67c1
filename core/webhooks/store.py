"""WebhookStore: an owner's webhook endpoints and their deliveries (sql/005_webhooks.sql).

Every query names the owner, so another owner's endpoint or delivery is "not found", never
"forbidden" (its existence is not told either). The signing secret is returned by
:meth:`WebhookStore.create` and :meth:`WebhookStore.rotate` only: :class:`Endpoint` does
not carry it, so no listing can show it by mistake.

URLs are vetted at creation (:func:`core.webhooks.client.vet_url`: SSRF) and again at every
attempt, since what a name resolves to may change after it was accepted.

:func:`emit` is the outbox's Python side: events that no statement of PostgreSQL writes
(``upload.ready``) are written with it inside the caller's transaction, exactly as the
trigger on jobs does for job events and the UPDATE of core/projects.py for project.updated
(both call ``nve_webhook_emit``).
"""

from __future__ import annotations

import builtins
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core.db.pool import DbConnection
from core.errors import NotFound, ValidationError
from core.jobs.queue import Acquire
from core.shapes import Enum, Kind, Named, Number, Obj, Prop, Text
from core.webhooks.client import vet_url
from core.webhooks.settings import WebhookSettings
from core.webhooks.signing import new_secret

EVENT_TYPES = ("job.completed", "job.failed", "job.cancelled", "upload.ready", "project.updated")
URL_MAX = 2048
DESCRIPTION_MAX = 500
OVERLAP_MAX = 7 * 86400
_EVENT_TYPE = Enum(EVENT_TYPES, EVENT_TYPES[0])


@dataclass(frozen=True, slots=True)
class _EventTypes(Kind):
    """A non-empty array of event types; each is kept once, in the order given."""

    def check(self, value: object, field: str) -> Any:
        if not isinstance(value, list) or not value:
            raise ValidationError(f"Field '{field}' must be a non-empty array of event types", field)
        for index, item in enumerate(value):
            _EVENT_TYPE.check(item, f"{field}[{index}]")
        return list(dict.fromkeys(value))

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "items": {"enum": list(EVENT_TYPES)}}


NEW_WEBHOOK = Named("NewWebhook", Obj({
    "url": Prop(Text(max_length=URL_MAX, non_empty=True), required=True,
                description="Where events are POSTed: http or https, resolving to public addresses only "
                            "(unless the operator set NVE_WEBHOOK_ALLOW_PRIVATE)"),
    "events": Prop(_EventTypes(), required=True, description="The event types this endpoint receives"),
    "description": Prop(Text(max_length=DESCRIPTION_MAX), nullable=True),
}, missing="together"))

ROTATION = Named("WebhookRotation", Obj({
    "overlapSeconds": Prop(Number(minimum=0, maximum=OVERLAP_MAX),
                           description="How long the old secret still signs (a second signature); "
                                       "24 h if absent, 0 ends it at once"),
}))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    owner: str
    url: str
    events: list[str]
    description: str | None
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    consecutive_failures: int
    previous_secret_expires_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Endpoint:
        return cls(str(row["id"]), row["owner"], row["url"], list(row["events"]), row["description"],
                   row["created_at"], row["disabled_at"], row["disabled_reason"], row["consecutive_failures"],
                   row["previous_secret_expires_at"])

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": self.events, "description": self.description,
                "createdAt": _iso(self.created_at), "disabledAt": _iso(self.disabled_at),
                "disabledReason": self.disabled_reason, "consecutiveFailures": self.consecutive_failures,
                "previousSecretExpiresAt": _iso(self.previous_secret_expires_at)}


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Delivery:
        return cls(row["id"], row["event_id"], row["event_type"], row["status"], row["attempts"],
                   row["last_status"], row["last_error"], row["last_attempt_at"], row["next_attempt_at"],
                   row["delivered_at"], row["created_at"])

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "eventId": self.event_id, "eventType": self.event_type, "status": self.status,
                "attempts": self.attempts, "lastStatus": self.last_status, "lastError": self.last_error,
                "lastAttemptAt": _iso(self.last_attempt_at),
                # Only a pending delivery has a next attempt; the column keeps its last value.
                "nextAttemptAt": _iso(self.next_attempt_at) if self.status == "pending" else None,
                "deliveredAt": _iso(self.delivered_at), "createdAt": _iso(self.created_at)}


_ENDPOINT_COLUMNS = ("id, owner, url, events, description, created_at, disabled_at, disabled_reason, "
                     "consecutive_failures, previous_secret_expires_at")
_CREATE = f"""
INSERT INTO webhook_endpoints (owner, url, events, description, secret) VALUES ($1, $2, $3, $4, $5)
RETURNING {_ENDPOINT_COLUMNS}"""
_LIST = f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE owner = $1 ORDER BY created_at, id"
_GET = f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE owner = $1 AND id = $2"
_DELETE = "DELETE FROM webhook_endpoints WHERE owner = $1 AND id = $2"
# The old secret signs on until now + overlap; an overlap of 0 drops it at once.
_ROTATE = """
UPDATE webhook_endpoints SET previous_secret = CASE WHEN $4 > 0 THEN secret END,
  previous_secret_expires_at = CASE WHEN $4 > 0 THEN now() + make_interval(secs => $4) END,
  secret = $3
WHERE owner = $1 AND id = $2
RETURNING previous_secret_expires_at"""

_DELIVERY_COLUMNS = ("d.id, d.event_id, v.type AS event_type, d.status, d.attempts, d.last_status, d.last_error, "
                     "d.last_attempt_at, d.next_attempt_at, d.delivered_at, d.created_at")
_DELIVERIES = f"""
SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id
WHERE d.endpoint_id = $1 ORDER BY d.id DESC LIMIT $2"""
# Pending again now. The lease is dropped too: an attempt in flight then records nothing
# (it no longer holds the lease), and the delivery is sent once more (duplicates are allowed,
# with the same webhook-id).
_REDELIVER = f"""
WITH again AS (
  UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), leased_until = NULL,
    delivered_at = NULL
  WHERE id = $2 AND endpoint_id = $1
  RETURNING *)
SELECT {_DELIVERY_COLUMNS} FROM again d JOIN webhook_events v ON v.id = d.event_id"""
# Asking for a redelivery is the owner saying the receiver is back: a disabled endpoint is
# enabled again (otherwise nothing could ever be sent to it again).
_ENABLE = """
UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL, consecutive_failures = 0
WHERE id = $1 AND disabled_at IS NOT NULL"""
_WAKE = "SELECT pg_notify('nve_webhooks', '')"

_EMIT = "SELECT nve_webhook_emit($1, $2, $3, $4::jsonb)"


async def emit(connection: DbConnection, owner: str, type: str, subject: str, data: dict[str, Any]) -> str | None:
    """Write event ``type`` of ``owner`` and its deliveries in ``connection``'s transaction.

    Returns the event's id, or None when no enabled endpoint of ``owner`` wants ``type`` (then
    nothing is written). Call it inside the transaction of the change the event announces.
    """
    event_id: str | None = await connection.fetchval(_EMIT, owner, type, subject, json.dumps(data))
    return event_id


def _endpoint_id(endpoint_id: str) -> uuid.UUID:
    """The id as a UUID; a malformed one is simply not found (as an unknown one is)."""
    try:
        return uuid.UUID(endpoint_id)
    except (ValueError, TypeError):
        raise NotFound(f"Webhook {endpoint_id} not found") from None


def _checked(shape: Named, body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    checked: dict[str, Any] = shape.check(body, "")
    return checked


class WebhookStore:
    """The queries behind /api/webhooks, each confined to one owner's rows."""

    def __init__(self, acquire: Acquire, settings: WebhookSettings) -> None:
        self._acquire = acquire
        self._settings = settings

    async def create(self, owner: str, body: object) -> tuple[Endpoint, str]:
        """A new endpoint and its signing secret (shown this once); a 400 naming the field if refused."""
        checked = _checked(NEW_WEBHOOK, body)
        await vet_url(checked["url"], self._settings.allow_private)
        secret = new_secret()
        async with self._acquire() as connection:
            row = await connection.fetchrow(_CREATE, owner, checked["url"], checked["events"],
                                            checked.get("description"), secret)
        assert row is not None, "an INSERT ... RETURNING returns its row"
        return Endpoint.from_row(row), secret

    async def list(self, owner: str) -> list[Endpoint]:
        async with self._acquire() as connection:
            rows = await connection.fetch(_LIST, owner)
        return [Endpoint.from_row(row) for row in rows]

    async def get(self, owner: str, endpoint_id: str) -> Endpoint:
        async with self._acquire() as connection:
            row = await connection.fetchrow(_GET, owner, _endpoint_id(endpoint_id))
        if row is None:
            raise NotFound(f"Webhook {endpoint_id} not found")
        return Endpoint.from_row(row)

    async def delete(self, owner: str, endpoint_id: str) -> None:
        """Delete the endpoint and its deliveries (events stay for other endpoints that have them)."""
        async with self._acquire() as connection:
            outcome = await connection.execute(_DELETE, owner, _endpoint_id(endpoint_id))
        if outcome != "DELETE 1":
            raise NotFound(f"Webhook {endpoint_id} not found")

    async def rotate(self, owner: str, endpoint_id: str, body: object) -> tuple[str, datetime | None]:
        """A new secret; the old one signs too until the returned moment (None: not at all)."""
        checked = _checked(ROTATION, {} if body is None else body)
        overlap = float(checked.get("overlapSeconds", self._settings.rotation_overlap))
        secret = new_secret()
        async with self._acquire() as connection:
            row = await connection.fetchrow(_ROTATE, owner, _endpoint_id(endpoint_id), secret, overlap)
        if row is None:
            raise NotFound(f"Webhook {endpoint_id} not found")
        expires: datetime | None = row["previous_secret_expires_at"]
        return secret, expires

    async def deliveries(self, owner: str, endpoint_id: str, limit: int = 100) -> builtins.list[Delivery]:
        """The endpoint's latest ``limit`` deliveries, newest first."""
        endpoint = await self.get(owner, endpoint_id)
        async with self._acquire() as connection:
            rows = await connection.fetch(_DELIVERIES, uuid.UUID(endpoint.id), limit)
        return [Delivery.from_row(row) for row in rows]

    async def redeliver(self, owner: str, endpoint_id: str, delivery_id: int) -> Delivery:
        """Make the delivery pending again, due now (and its endpoint enabled again)."""
        endpoint = await self.get(owner, endpoint_id)
        if not 0 < delivery_id < 2**63:  # beyond bigint: no such row (and no query error)
            raise NotFound(f"Delivery {delivery_id} of webhook {endpoint_id} not found")
        async with self._acquire() as connection, connection.transaction():
            row = await connection.fetchrow(_REDELIVER, uuid.UUID(endpoint.id), delivery_id)
            if row is None:
                raise NotFound(f"Delivery {delivery_id} of webhook {endpoint_id} not found")
            await connection.execute(_ENABLE, uuid.UUID(endpoint.id))
            await connection.execute(_WAKE)
        return Delivery.from_row(row)
