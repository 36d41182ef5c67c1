"""The bridge from the job table to this node's WebSocket hub.

Every change of a job's visible state is NOTIFYed by the jobs table's trigger on
``nve_job_events`` as the WebSocket message it means, after the job's owner and a line
feed (sql/003_jobs.sql, sql/004_owners.sql: the packed form of server/ws/messages.py). Each server node
LISTENs on a connection of its own and routes what it hears to its *own* clients only:
PostgreSQL already delivers the NOTIFY to every node, so re-publishing it on the hub's
Redis bus would hand every other node each message twice (a second ``progress 100`` is
a contract violation). The hub's monotonic filter still applies.

A lost LISTEN connection is re-opened with the contract's backoff ``min(n * 50 ms, 2 s)``;
NOTIFY does not replay, so on reconnect the current message of every job changed while
cut off (plus a margin for clock skew) is routed again (the filter drops what clients
already have).

The same table answers the hub's latest-state fallback (:func:`latest_from`): a client
that subscribes to an operation that ended before this node started, or that nobody
remembers, still gets its final message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from prometheus_client import Counter

from core.db.listen import hold_listen
from core.db.pool import DbConnection
from core.errors import DomainError
from core.jobs.queue import JobQueue
from core.registry import REGISTRY
from core.tasks import cancel_and_wait
from server.ws.messages import BadMessage, Envelope, job_envelope, unpack

log = logging.getLogger("nve.jobs.bridge")

CHANNEL = "nve_job_events"
CATCH_UP_MARGIN = timedelta(seconds=5)

Deliver = Callable[[Envelope], None]

EVENTS = Counter("nve_job_events_total", "Job messages heard from PostgreSQL and routed to this node's hub",
                 ["type"], registry=REGISTRY)


def latest_from(queue: JobQueue) -> Callable[[str], Awaitable[Envelope | None]]:
    """The hub's latest-state fallback: a job's current message, None if unknown or unreachable."""

    async def latest(operation_id: str) -> Envelope | None:
        try:
            event = await queue.event(operation_id)
        except DomainError as error:
            log.debug("latest state of %s not read: %s", operation_id, error)
            return None
        return job_envelope(event.type, event.data, event.owner) if event is not None else None

    return latest


class JobEventBridge:
    def __init__(self, dsn: str, queue: JobQueue, deliver: Deliver) -> None:
        self._dsn = dsn
        self._queue = queue
        self._deliver = deliver
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        """Set while the LISTEN connection is up."""

    async def start(self, wait: float = 2.0) -> None:
        """Start listening; waits up to ``wait`` s for the first LISTEN (PostgreSQL may be down)."""
        self._task = asyncio.create_task(self._run(), name="nve-job-events")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), wait)

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def _notified(self, _connection: DbConnection, _pid: int, _channel: str, payload: object) -> None:
        self._route(str(payload).encode())  # asyncpg passes a NOTIFY payload as str: str() returns it as is

    def _route(self, payload: bytes) -> None:
        try:
            envelope = unpack(payload)
        except BadMessage as error:
            log.warning("unreadable job event: %s", error)
            return
        EVENTS.labels(envelope.type).inc()
        self._deliver(envelope)

    async def _run(self) -> None:
        await hold_listen(self._dsn, CHANNEL, self._notified, name="nve-job-events", listening=self.listening,
                          on_connected=self._reconnected)

    async def _reconnected(self, lost_at: datetime | None) -> None:
        if lost_at is not None:
            await self._catch_up(lost_at - CATCH_UP_MARGIN)

    async def _catch_up(self, since: datetime) -> None:
        try:
            events = await self._queue.events_since(since)
        except DomainError as error:
            log.warning("job events since %s not read: %s", since, error)
            return
        for event in events:
            self._deliver(job_envelope(event.type, event.data, event.owner))
