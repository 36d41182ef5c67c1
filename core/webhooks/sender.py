"""WebhookSender: the service that sends the outbox's deliveries, on any number of nodes.

Life of a delivery (rows of sql/005_webhooks.sql)::

    pending --claim (lease)--> in flight --2xx--------------------------> delivered
       ^                           |  \\--failed, retry_for not over---> pending (next_attempt_at = backoff)
       |                           |   \\--failed, retry_for over------> failed
       +-- lease expired ----------+   (a node that died mid-attempt: sent again, same webhook-id and body)

- Claiming is one statement: it locks the endpoints that have due deliveries with
  ``FOR NO KEY UPDATE SKIP LOCKED`` (two nodes never claim for one endpoint at the same
  moment, and neither waits for the other), counts that endpoint's deliveries in flight
  (pending with a lease in the future, on any node) and leases at most ``per_endpoint`` minus
  that many, each row ``FOR UPDATE SKIP LOCKED``. So a receiver that hangs holds at most
  ``per_endpoint`` deliveries, and every other endpoint's are claimed and sent meanwhile. The
  endpoint lock is NO KEY UPDATE so it never waits for, nor blocks, a transaction inserting
  deliveries (their foreign key check takes KEY SHARE): finishing a job never waits on this.
- The lease's end is also the claim's token: an attempt records its outcome only where
  ``leased_until`` is still what its claim set, so an attempt presumed dead (its lease
  expired and another node sent the delivery) or redelivered meanwhile records nothing.
  A lease outlasts an attempt (``lease > total_timeout``), so a live node never loses one.
- Job events carry no data in the outbox (the trigger runs inside the job's UPDATE); the
  first attempt writes ``Job.to_api()`` into the event, once (``WHERE data IS NULL``: two
  nodes racing keep the first one's), and every attempt sends the bytes read back from
  the row, so retries and duplicates after a crash are byte-identical.
- Each attempt is signed anew (its ``webhook-timestamp`` is the attempt's time) with the
  endpoint's secret and, during a rotation's overlap, the previous one too.
- A failed attempt adds one to the endpoint's consecutive failures; reaching
  ``disable_after`` disables it, saying why; any 2xx resets the count.

Wake-ups: ``LISTEN nve_webhooks`` (``nve_webhook_emit()`` NOTIFYs at commit), the end of
an attempt (a slot is free), and a poll every ``poll`` seconds (retries fall due, leases
expire, and NOTIFY is lost while the LISTEN connection is down).

Retention: every ``SWEEP_EVERY`` seconds a sender deletes the events older than ``retain``
(7 days) whose deliveries have all ended, with their deliveries; a pending one keeps its
event however old it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from prometheus_client import Counter, Gauge, Histogram

from core.db.listen import hold_listen
from core.db.pool import CONNECTION_ERRORS, DbConnection
from core.errors import DomainError
from core.jobs.queue import Acquire, JobQueue
from core.registry import REGISTRY
from core.tasks import cancel_and_wait
from core.webhooks.client import Answer, post
from core.webhooks.settings import WebhookSettings
from core.webhooks.signing import sign

log = logging.getLogger("nve.webhooks")

CHANNEL = "nve_webhooks"
MAX_IN_FLIGHT = 64
"""Attempts one node makes at once (every endpoint together); each is a socket and a task."""
RELEASE_TIMEOUT = 2.0

# What a query against PostgreSQL may fail with that is no bug: the delivery waits for its lease.
DB_ERRORS: tuple[type[BaseException], ...] = (DomainError, asyncpg.PostgresError, *CONNECTION_ERRORS)

DELIVERIES = Counter("nve_webhook_deliveries", "Webhook delivery attempts by outcome: delivered (2xx), retry "
                     "(failed, sent again later), failed (failed, retry_for is over: given up)", ["result"],
                     registry=REGISTRY)
BACKLOG = Gauge("nve_webhook_backlog", "Pending webhook deliveries (due, in flight or waiting for a retry), "
                "as this node last counted", registry=REGISTRY)
LATENCY = Histogram("nve_webhook_delivery_seconds", "From an event's creation to its delivery's 2xx answer",
                    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
                    registry=REGISTRY)
_DELIVERED, _RETRY, _FAILED = (DELIVERIES.labels(result) for result in ("delivered", "retry", "failed"))

_DUE = "d.status = 'pending' AND d.next_attempt_at <= now() AND (d.leased_until IS NULL OR d.leased_until <= now())"
# $1 per endpoint, $2 this node's free slots, $3 the lease in seconds.
_CLAIM = f"""
WITH endpoints AS (
  SELECT e.id FROM webhook_endpoints e
  WHERE e.disabled_at IS NULL AND e.id IN (SELECT d.endpoint_id FROM webhook_deliveries d WHERE {_DUE})
  FOR NO KEY UPDATE SKIP LOCKED),
picked AS (
  SELECT due.id FROM endpoints e CROSS JOIN LATERAL (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.endpoint_id = e.id AND {_DUE}
    ORDER BY d.next_attempt_at, d.id
    LIMIT greatest(0, $1 - (SELECT count(*) FROM webhook_deliveries b
                            WHERE b.endpoint_id = e.id AND b.status = 'pending' AND b.leased_until > now()))
    FOR UPDATE SKIP LOCKED) due
  LIMIT $2)
UPDATE webhook_deliveries d SET leased_until = now() + make_interval(secs => $3)
FROM picked, webhook_events v, webhook_endpoints e
WHERE d.id = picked.id AND v.id = d.event_id AND e.id = d.endpoint_id
RETURNING d.id, d.leased_until, d.attempts, v.id AS event_id, v.owner, v.type, v.subject, v.data::text AS data,
  v.created_at, e.id AS endpoint_id, e.url, e.secret,
  CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END AS previous_secret"""

_MATERIALISE = "UPDATE webhook_events SET data = $2::jsonb WHERE id = $1 AND data IS NULL RETURNING data::text"
_DATA = "SELECT data::text FROM webhook_events WHERE id = $1"

_DELIVERED_SQL = """
UPDATE webhook_deliveries d SET status = 'delivered', attempts = d.attempts + 1, last_status = $3,
  last_error = NULL, last_attempt_at = now(), delivered_at = now(), leased_until = NULL
FROM webhook_events v
WHERE d.id = $1 AND d.leased_until = $2 AND v.id = d.event_id
RETURNING extract(epoch FROM clock_timestamp() - v.created_at)::float8 AS latency"""
_RESET = "UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id = $1 AND consecutive_failures <> 0"
# Retried until retry_for ($5) after the event; the last retry is at that moment, not past it.
_FAILED_SQL = """
UPDATE webhook_deliveries d SET attempts = d.attempts + 1, last_status = $3::int, last_error = $4::text,
  last_attempt_at = now(), leased_until = NULL,
  status = CASE WHEN now() >= v.created_at + make_interval(secs => $5) THEN 'failed' ELSE 'pending' END,
  next_attempt_at = least(now() + make_interval(secs => $6), v.created_at + make_interval(secs => $5))
FROM webhook_events v
WHERE d.id = $1 AND d.leased_until = $2 AND v.id = d.event_id
RETURNING d.status"""
# SET expressions all read the row as it was: consecutive_failures + 1 is the new count.
_FAILURE = """
UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,
  disabled_at = CASE WHEN disabled_at IS NULL AND consecutive_failures + 1 >= $2 THEN now() ELSE disabled_at END,
  disabled_reason = CASE WHEN disabled_at IS NULL AND consecutive_failures + 1 >= $2
    THEN format('Disabled after %s failed attempts in a row; the last: %s', consecutive_failures + 1, $3::text)
    ELSE disabled_reason END
WHERE id = $1
RETURNING disabled_at IS NOT NULL AND consecutive_failures = $2 AS disabled_now"""
_RELEASE = """
UPDATE webhook_deliveries d SET leased_until = NULL
FROM unnest($1::bigint[], $2::timestamptz[]) AS mine(id, leased_until)
WHERE d.id = mine.id AND d.leased_until = mine.leased_until"""
_BACKLOG = "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"

# Events older than $1 seconds none of whose deliveries is still pending, oldest first, at most
# $2 of them (their deliveries go with them: ON DELETE CASCADE). SKIP LOCKED: nodes sweeping
# at once share the work instead of waiting on each other.
_SWEEP = """
DELETE FROM webhook_events WHERE id IN (
  SELECT e.id FROM webhook_events e
  WHERE e.created_at < now() - make_interval(secs => $1)
    AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
  ORDER BY e.created_at LIMIT $2 FOR UPDATE SKIP LOCKED)"""
SWEEP_EVERY = 300.0
"""Seconds between two sweeps of old events by one sender."""
SWEEP_BATCH = 1000
"""Events deleted per statement: a sweep of a large backlog holds no long lock."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A leased delivery with what its attempt needs."""

    id: int
    leased_until: datetime
    attempts: int
    """Attempts recorded before this one."""
    event_id: str
    owner: str
    type: str
    subject: str
    data: str | None
    created_at: datetime
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Claim:
        secrets = (row["secret"],) if row["previous_secret"] is None else (row["secret"], row["previous_secret"])
        return cls(row["id"], row["leased_until"], row["attempts"], row["event_id"], row["owner"], row["type"],
                   row["subject"], row["data"], row["created_at"], str(row["endpoint_id"]), row["url"], secrets)


def body_of(claim: Claim, data: str) -> bytes:
    """The message an event is (Standard Webhooks: type, timestamp, data), the same bytes every time."""
    return msgspec.json.encode({"type": claim.type, "timestamp": claim.created_at.isoformat(),
                                "data": msgspec.json.decode(data)})


class WebhookSender:
    def __init__(self, dsn: str, acquire: Acquire, settings: WebhookSettings,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._dsn = dsn
        self._acquire = acquire
        self._settings = settings
        self._max_in_flight = max_in_flight
        self._jobs = JobQueue(acquire)
        self._wake = asyncio.Event()
        self._attempts: dict[asyncio.Task[None], Claim] = {}
        self._run_task: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._backlog: int | None = None
        self._counted_at = float("-inf")
        self._swept_at = float("-inf")
        self.listening = asyncio.Event()
        """Set while the LISTEN connection is up (without it, deliveries wait for the poll)."""

    async def start(self) -> None:
        self._listen_task = asyncio.create_task(self._listen(), name="nve-webhooks-listen")
        self._run_task = asyncio.create_task(self._run(), name="nve-webhooks")

    async def stop(self) -> None:
        """Stop claiming, abandon the attempts in flight and hand their leases back.

        An abandoned attempt may have reached its receiver: it is sent again (duplicates are
        allowed, with the same webhook-id), by whichever node claims it first.
        """
        await cancel_and_wait(self._run_task, self._listen_task)
        self._run_task = self._listen_task = None
        attempts, self._attempts = self._attempts, {}
        await cancel_and_wait(*attempts)
        if attempts:
            claims = list(attempts.values())
            try:
                async with asyncio.timeout(RELEASE_TIMEOUT), self._acquire() as connection:
                    await connection.execute(_RELEASE, [c.id for c in claims], [c.leased_until for c in claims])
            except DB_ERRORS as error:  # TimeoutError among them
                log.warning("leases of %d webhook deliveries not handed back (%s): they expire", len(claims), error)

    async def readiness(self) -> dict[str, object]:
        return {"events": "listening" if self.listening.is_set() else "down", "inFlight": len(self._attempts),
                "backlog": self._backlog}

    # -- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                free = self._max_in_flight - len(self._attempts)
                if free > 0:
                    for claim in await self._claim(free):
                        task = asyncio.create_task(self._attempt(claim), name=f"nve-webhook-{claim.id}")
                        self._attempts[task] = claim
                        task.add_done_callback(self._finished)
                await self._count_backlog()
                await self._sweep()
            except DB_ERRORS as error:
                log.warning("webhook deliveries not claimed: %s", error)
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel that
            # arrives as the wait ends, and stop() would then wait for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.poll):
                    await self._wake.wait()

    def _finished(self, task: asyncio.Task[None]) -> None:
        claim = self._attempts.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            # A bug, not an answer: said once here; the lease expires and the delivery is tried again.
            log.error("webhook delivery %s attempt crashed", claim.id if claim else "?", exc_info=task.exception())
        self._wake.set()

    async def _claim(self, limit: int) -> list[Claim]:
        async with self._acquire() as connection:
            rows = await connection.fetch(_CLAIM, self._settings.per_endpoint, limit, self._settings.lease)
        return [Claim.from_row(row) for row in rows]

    async def _count_backlog(self) -> None:
        """Refresh the backlog gauge, at most once per poll interval (a count is a scan)."""
        now = time.monotonic()
        if now - self._counted_at < self._settings.poll:
            return
        self._counted_at = now
        async with self._acquire() as connection:
            self._backlog = int(await connection.fetchval(_BACKLOG))
        BACKLOG.set(self._backlog)

    async def sweep(self) -> int:
        """Delete the events kept longer than ``retain`` whose deliveries have all ended; how many."""
        swept = 0
        while True:
            async with self._acquire() as connection:
                status = await connection.execute(_SWEEP, self._settings.retain, SWEEP_BATCH)
            deleted = int(status.split()[-1])
            swept += deleted
            if deleted < SWEEP_BATCH:
                return swept

    async def _sweep(self) -> None:
        """:meth:`sweep`, at most once per ``SWEEP_EVERY``."""
        now = time.monotonic()
        if now - self._swept_at < SWEEP_EVERY:
            return
        self._swept_at = now
        swept = await self.sweep()
        if swept:
            log.info("deleted %d webhook events older than %.0f s", swept, self._settings.retain)

    # -- one attempt ------------------------------------------------------------------------

    async def _attempt(self, claim: Claim) -> None:
        try:
            body = body_of(claim, claim.data if claim.data is not None else await self._materialise(claim))
            timestamp = int(time.time())
            headers = [("webhook-id", claim.event_id), ("webhook-timestamp", str(timestamp)),
                       ("webhook-signature", sign(claim.secrets, claim.event_id, timestamp, body))]
            answer = await post(claim.url, headers, body, allow_private=self._settings.allow_private,
                                connect_timeout=self._settings.connect_timeout,
                                total_timeout=self._settings.total_timeout)
            await self._record(claim, answer)
        except DB_ERRORS as error:
            log.warning("webhook delivery %d not recorded (%s): sent again once its lease expires", claim.id, error)

    async def _materialise(self, claim: Claim) -> str:
        """The job event's data, written into the event by the first attempt (of any node)."""
        job = await self._jobs.get(claim.owner, claim.subject)
        data: dict[str, Any] = job.to_api() if job is not None else {"operationId": claim.subject}
        async with self._acquire() as connection:
            stored: str | None = await connection.fetchval(_MATERIALISE, claim.event_id, json.dumps(data))
            if stored is None:  # another attempt wrote it first: send what it wrote
                stored = await connection.fetchval(_DATA, claim.event_id)
        assert stored is not None, "the event's data was written by this attempt or an earlier one"
        return stored

    async def _record(self, claim: Claim, answer: Answer) -> None:
        async with self._acquire() as connection, connection.transaction():
            if answer.ok:
                await self._delivered(connection, claim, answer)
            else:
                await self._failed(connection, claim, answer)

    async def _delivered(self, connection: DbConnection, claim: Claim, answer: Answer) -> None:
        latency = await connection.fetchval(_DELIVERED_SQL, claim.id, claim.leased_until, answer.status)
        if latency is None:
            log.info("webhook delivery %d: lease lost before its 2xx was recorded", claim.id)
            return
        await connection.execute(_RESET, claim.endpoint_id)
        _DELIVERED.inc()
        LATENCY.observe(latency)

    async def _failed(self, connection: DbConnection, claim: Claim, answer: Answer) -> None:
        # attempts + 1 failed so far, this one included: the backoff grows with them.
        delay = self._settings.backoff(claim.attempts + 1, random.uniform(0.5, 1.0))
        status = await connection.fetchval(_FAILED_SQL, claim.id, claim.leased_until, answer.status, answer.error,
                                           self._settings.retry_for, delay)
        if status is None:
            log.info("webhook delivery %d: lease lost before its failure was recorded", claim.id)
            return
        (_RETRY if status == "pending" else _FAILED).inc()
        summary = answer.summary()
        disabled_now = await connection.fetchval(_FAILURE, claim.endpoint_id, self._settings.disable_after, summary)
        if disabled_now:
            log.warning("webhook endpoint %s disabled after %d failed attempts in a row (the last: %s)",
                        claim.endpoint_id, self._settings.disable_after, summary)

    # -- wake-ups ---------------------------------------------------------------------------

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        await hold_listen(self._dsn, CHANNEL, self._notified, name="nve-webhooks", listening=self.listening,
                          on_connected=self._reconnected)

    async def _reconnected(self, _lost_at: datetime | None) -> None:
        self._wake.set()  # what was committed while not listening
