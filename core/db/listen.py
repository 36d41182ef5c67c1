"""A LISTEN connection held for as long as its task runs: PostgreSQL NOTIFY as a wake-up.

:func:`hold_listen` opens a connection of its own (a pooled one would be handed to other
work), LISTENs on one channel, and when the connection is lost opens another with the
contract's backoff ``min(n * 50 ms, 2 s)``. NOTIFY does not replay what was sent while no
one listened, so ``on_connected`` runs after every (re)connect with the time the previous
connection was lost (None the first time): the caller catches up on what it missed
(server/ws/job_events.py re-reads the jobs changed since; core/webhooks/sender.py looks
for due deliveries). ``listening`` is set while the connection is up (``/readyz``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from core.db.pool import DbConnection
from core.kv.breaker import reconnect_delay

log = logging.getLogger("nve.db.listen")

Notified = Callable[[DbConnection, int, str, object], None]
"""asyncpg's listener callback: (connection, pid, channel, payload)."""


async def hold_listen(dsn: str, channel: str, notified: Notified, *, name: str, listening: asyncio.Event,
                      on_connected: Callable[[datetime | None], Awaitable[None]]) -> None:
    """LISTEN on ``channel`` until cancelled (module docstring); ``name`` is the connection's
    ``application_name``, so an operator sees in ``pg_stat_activity`` who holds it."""
    failures = 0
    lost_at: datetime | None = None
    while True:
        connection: asyncpg.Connection[asyncpg.Record] | None = None
        try:
            connection = await asyncpg.connect(dsn, timeout=2, server_settings={"application_name": name})
            closed = asyncio.Event()
            connection.add_termination_listener(lambda _, closed=closed: closed.set())
            await connection.add_listener(channel, notified)
            failures = 0
            listening.set()
            await on_connected(lost_at)
            await closed.wait()
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.debug("%s: LISTEN connection failed: %s", name, error)
        finally:
            if listening.is_set():
                lost_at = datetime.now(UTC)
            listening.clear()
            if connection is not None:
                connection.terminate()
        failures += 1
        await asyncio.sleep(reconnect_delay(failures))
