"""The application's services: built, started and stopped in one place.

:class:`App` is what every handler reaches through ``request.app``: the settings, the
database, and the services built on them. Its constructor builds each service once, in
dependency order, handing every one its collaborators through its constructor (nothing is
attached or re-wired later). :meth:`App.start` starts them in that order on an
``AsyncExitStack``; if one fails to start, those already started are stopped again (in
reverse) before the error propagates. :meth:`App.stop` stops them all in reverse order.

What depends on what (so the order below is the only one that works):

* the media pool: the short media calls (probe, filmstrip, waveform, ingest);
* Redis services (sessions, rate limits, the metadata cache, whose misses probe in the pool);
* the job queue (PostgreSQL), the tus store and its periodic sweep;
* the WebSocket hub (its token redemption is access's, its latest-state fallback the queue's);
* the job-event bridge (PostgreSQL NOTIFY to the hub), the webhook sender (the outbox's
  deliveries: PostgreSQL only) and the local worker processes.

Shutdown is the contract's (docs/CONTRACT.md section 1): :meth:`App.close_connections` closes
WebSockets with 1001 before HTTP drains; :meth:`App.stop` then stops workers first (they
hand their jobs back), the webhook sender (it hands the leases of attempts in flight back),
the bridge, the hub, the sweep, Redis and the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from core.config import Settings
from core.db.pool import Database
from core.jobs.queue import JobQueue
from core.jobs.supervisor import Supervisor
from core.kv.services import KvServices, RateLimits
from core.media.ingest import metadata
from core.media.pool import MediaPool
from core.projects import ProjectStore
from core.tasks import cancel_and_wait
from core.uploads.resumable import TusStore, clean_periodically
from core.uploads.store import UploadStore
from core.webhooks.sender import WebhookSender
from core.webhooks.store import WebhookStore
from server.http.routing import Route
from server.policy.access import Access
from server.ws.hub import Hub, create_hub
from server.ws.job_events import JobEventBridge, latest_from
from server.ws.settings import WsSettings

log = logging.getLogger("nve.app")

TUS_DIR = ".tus"
TUS_SWEEP_INTERVAL = 600.0

Readiness = Callable[[], Awaitable[dict[str, object]]]


Step = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]
"""How one service starts and how it stops."""


class App:
    """The services of one server process (module docstring); ``request.app`` in handlers."""

    def __init__(self, settings: Settings, db: Database, routes: Sequence[Route] = ()) -> None:
        self.settings = settings
        self.db = db
        self.routes = routes
        """The route table the app is served with (the OpenAPI document is derived from it)."""
        self.projects = ProjectStore(db)
        self.access = Access(db, settings.access, settings.allowed_hosts)
        self.media_pool = MediaPool(settings.media_workers, warm=settings.workers > 0)
        self.kv = KvServices(
            settings.redis_url, db, settings.media_path, self._probe, key_prefix=settings.redis_prefix,
            session_ttl=settings.session_ttl, metadata_ttl=settings.metadata_ttl,
            limits=RateLimits(settings.rate_limit_writes, settings.rate_limit_uploads, settings.rate_limit_window))
        self.jobs = JobQueue(db.acquire, settings.jobs.max_attempts)
        self.webhooks = WebhookStore(db.acquire, settings.webhooks)
        self.tus = TusStore(settings.media_path / TUS_DIR, settings.tus_ttl)
        sweep = Periodic(functools.partial(clean_periodically, self.tus, settings.media_path, TUS_SWEEP_INTERVAL),
                         "nve-tus-sweep")
        hub = self.hub = create_hub(WsSettings.from_settings(settings), settings.redis_url,
                                    redeem=self.access.tokens.redeem, fallback=latest_from(self.jobs))
        # Local delivery only: PostgreSQL already NOTIFYs every node (server/ws/job_events.py).
        job_events = JobEventBridge(db.dsn, self.jobs, hub.deliver_local)
        sender = WebhookSender(db.dsn, db.acquire, settings.webhooks)
        supervisor = (Supervisor(settings.workers, db.dsn, settings.media_path, settings.jobs,
                                 grace=settings.shutdown_timeout)
                      if settings.workers > 0 else None)
        self._close_hub: Callable[[], Awaitable[None]] | None = hub.close
        # Bound now, so the lifecycle and /readyz work on the services built here even when
        # a test swaps the attribute a handler reads (a recording hub, a warm shared pool).
        self._steps: list[Step] = [
            (self.media_pool.start, self.media_pool.close),
            (self.kv.start, self.kv.close),
            (sweep.start, sweep.stop),
            (hub.start, self.close_connections),
            (job_events.start, job_events.close),
            (sender.start, sender.stop),
        ]
        if supervisor is not None:
            # Stopped first: the workers hand their jobs back while PostgreSQL is still there.
            self._steps.append((supervisor.start, supervisor.stop))
        self.readiness: dict[str, Readiness] = {
            "redis": self.kv.readiness,
            "websocket": functools.partial(_websocket_readiness, hub),
            "jobs": functools.partial(_jobs_readiness, job_events, supervisor),
            "webhooks": sender.readiness,
        }
        """What ``/readyz`` reports besides the database, by service (none of it gates readiness)."""
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def uploads(self) -> UploadStore:
        """Storing finished uploads, over the pool and queue the app holds now (tests swap them)."""
        return UploadStore(self.settings.media_path, self.media_pool, self.access.media, self.kv.metadata, self.jobs)

    async def _probe(self, path: Path) -> dict[str, Any]:
        """The metadata cache's probe: :func:`core.media.ingest.metadata` in the media pool."""
        return await self.media_pool.run(metadata, str(path))

    async def start(self) -> None:
        """Start every service in dependency order; on a failure, stop those started and raise."""
        async with contextlib.AsyncExitStack() as stack:
            for start, stop in self._steps:
                await start()
                stack.push_async_callback(stop)
            self._stack = stack.pop_all()

    async def close_connections(self) -> None:
        """Close the WebSockets (with 1001) before HTTP drains; once."""
        close, self._close_hub = self._close_hub, None
        if close is not None:
            await close()

    async def stop(self) -> None:
        """Stop every started service in reverse order; a failure is logged, the rest still stop."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        try:
            await stack.aclose()
        except Exception:
            log.exception("stopping the app's services failed")


class Periodic:
    """A background task as a service: started with the app, cancelled when it stops."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self._run = run
        self._name = name
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


async def _websocket_readiness(hub: Hub) -> dict[str, object]:
    return {"clients": len(hub.clients), "bus": hub.bus.state}


async def _jobs_readiness(job_events: JobEventBridge, supervisor: Supervisor | None) -> dict[str, object]:
    state: dict[str, object] = {"events": "listening" if job_events.listening.is_set() else "down"}
    if supervisor is not None:
        state["workers"] = sum(1 for process in supervisor.processes
                               if process is not None and process.returncode is None)
        state["workerRestarts"] = supervisor.restarts
    return state
