"""The asyncpg pool, wrapped so that a PostgreSQL outage costs a request milliseconds, not seconds.

The pool follows the contract (20 connections at most, idle ones closed after 30 s,
connect timeout 2 s). Around it sits a small outage latch: once a connection attempt or a
query fails because the server is gone, every acquire fails at once with
:class:`core.errors.Unavailable` until a background probe reconnects. Without it each
request would wait out its own connect timeout against a dead server.
``nve_db_unavailable_total`` counts both kinds of refusal, so it shows (to operators and
tests alike) that requests stopped trying PostgreSQL during an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from prometheus_client import Counter

from core.errors import Unavailable
from core.registry import REGISTRY
from core.tasks import cancel_and_wait

log = logging.getLogger("nve.db")

# Errors that mean "the server or the link is gone", as opposed to a bad query.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
    # When PostgreSQL shuts down, an idle pooled connection first receives the FATAL
    # "terminating connection" and only then its end of stream; a statement started in
    # between finds asyncpg's protocol stuck ("another operation is in progress") and
    # fails before sending anything. The connection is dead; the latch's probe replaces
    # every pooled connection before the pool is used again.
    asyncpg.exceptions.InternalClientError,
)

PROBE_INTERVAL = 0.5

UNAVAILABLE = Counter(
    "nve_db_unavailable", "Database uses refused because PostgreSQL is unreachable: failed (this "
    "attempt found it gone), rejected (the outage latch answered without trying).", ["cause"],
    registry=REGISTRY,
)
_FAILED, _REJECTED = UNAVAILABLE.labels("failed"), UNAVAILABLE.labels("rejected")

DbConnection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""What queries run on: a connection of its own, or a pooled one (asyncpg hands those out
behind a proxy that forwards every method to the connection it holds)."""


async def _keep_session(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """Release a connection to the pool without asyncpg's default reset query.

    That query (unlock advisory locks, CLOSE ALL, UNLISTEN *, RESET ALL) costs a round trip
    on every release, which on a GET by id doubled the database time. Pooled connections
    here never change session state: LISTEN and advisory locks use connections of their
    own, outside the pool. asyncpg still rolls back a transaction left open.
    """


class Database:
    """An asyncpg pool plus the outage latch; ``acquire()`` is the one way in."""

    def __init__(self, dsn: str, *, max_size: int = 20, idle_timeout: float = 30.0,
                 connect_timeout: float = 2.0) -> None:
        self.dsn = dsn
        self._max_size = max_size
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._down_since: float | None = None
        self._probe: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=0,
            max_size=self._max_size,
            max_inactive_connection_lifetime=self._idle_timeout,
            timeout=self._connect_timeout,
            command_timeout=30,
            server_settings={"timezone": "UTC", "application_name": "nve"},
            reset=_keep_session,
        )

    async def close(self) -> None:
        await cancel_and_wait(self._probe)
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), timeout=5)
            self._pool.terminate()

    @property
    def available(self) -> bool:
        return self._down_since is None

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        assert self._pool is not None, "Database.open() was not awaited"
        return self._pool

    def stats(self) -> dict[str, int]:
        pool = self.pool
        return {"size": pool.get_size(), "idle": pool.get_idle_size(), "max": pool.get_max_size()}

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        """A pooled connection; raises :class:`Unavailable` at once while PostgreSQL is down."""
        if self._down_since is not None:
            _REJECTED.inc()
            raise Unavailable("The database is unavailable; try again shortly")
        try:
            async with self.pool.acquire() as connection:
                yield connection
        except CONNECTION_ERRORS as error:
            _FAILED.inc()
            self._mark_down(error)
            raise Unavailable("The database is unavailable; try again shortly") from error

    async def ping(self) -> bool:
        """One round trip, used by /readyz; also clears the latch when it succeeds."""
        try:
            async with self.pool.acquire(timeout=self._connect_timeout) as connection:
                await connection.fetchval("SELECT 1", timeout=self._connect_timeout)
        except CONNECTION_ERRORS:
            return False
        self._down_since = None
        return True

    def _mark_down(self, error: BaseException) -> None:
        if self._down_since is None:
            log.warning("PostgreSQL unreachable (%s); failing fast until it is back", error)
            self._down_since = time.monotonic()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_up())

    async def _probe_until_up(self) -> None:
        # Connections opened before the outage are dead; none of them may serve a request again.
        await self.pool.expire_connections()
        while self._down_since is not None:
            await asyncio.sleep(PROBE_INTERVAL)
            if await self.ping():
                log.info("PostgreSQL is reachable again")
