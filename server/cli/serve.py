"""``nve serve``: start-up and shutdown of one server process.

Order on the way up: the database (embedded or configured), migrations, the pool, the
app's services (server/app.py, in their own order), then the listening socket, so nothing
is accepted before it can be served; a step that fails undoes the ones before it. On
SIGTERM/SIGINT, in the contract's order: stop accepting, close WebSockets with 1001 and
drain in-flight requests until the deadline, stop the app's services (workers hand their
jobs back), close the pool, stop the embedded database, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Iterator

from core.config import Settings
from core.db.embedded import EmbeddedPostgres
from core.db.migrations import migrate
from core.db.pool import Database
from server.app import App
from server.dispatch import Dispatcher
from server.http.routing import Router
from server.http.server import HTTPServer
from server.routes import route_table

log = logging.getLogger("nve")


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The configured database, or an embedded one for as long as the block runs."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    with EmbeddedPostgres(settings.data_dir) as embedded:
        yield embedded.dsn


class Running:
    """A started server: its app, its dispatcher, its HTTP listener and the means to stop it."""

    def __init__(self, app: App, dispatcher: Dispatcher, http: HTTPServer) -> None:
        self.app = app
        self.dispatcher = dispatcher
        self.http = http
        self.stopped = asyncio.Event()

    @property
    def router(self) -> Router:
        """The routes served (tests mount probes of their own on it)."""
        return self.dispatcher.router

    @property
    def port(self) -> int:
        assert self.http.port is not None
        return self.http.port

    async def stop(self) -> None:
        """Graceful shutdown as docs/CONTRACT.md section 1 says; idempotent."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        deadline = time.monotonic() + self.app.settings.shutdown_timeout
        self.http.stop_accepting()
        await self.app.close_connections()
        await self.http.shutdown(deadline)
        await self.app.stop()
        await self.app.db.close()


async def start(settings: Settings, dsn: str, sock: socket.socket | None = None) -> Running:
    """Migrate, open the pool, start the app and listen; returns once accepting."""
    settings.media_path.mkdir(parents=True, exist_ok=True)
    applied = await migrate(dsn)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    db = Database(dsn, max_size=settings.db_pool_max, idle_timeout=settings.db_idle_timeout,
                  connect_timeout=settings.db_connect_timeout)
    await db.open()
    async with contextlib.AsyncExitStack() as undo:
        undo.push_async_callback(db.close)
        routes = route_table(settings)
        app = App(settings, db, routes)
        await app.start()
        undo.push_async_callback(app.stop)
        dispatcher = Dispatcher(app, routes)
        http = HTTPServer(settings, dispatcher)
        await http.start(settings.host, settings.port, sock=sock)
        undo.pop_all()
    log.info("listening on http://%s:%d", settings.host, http.port)
    return Running(app, dispatcher, http)


async def serve(settings: Settings, dsn: str) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    running = await start(settings, dsn)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down")
    await running.stop()
