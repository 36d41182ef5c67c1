"""The listening socket and the set of live connections: admission, shutdown, draining.

At the cap (``settings.max_connections``) a new connection is admitted by shedding the
connection that has waited longest without a request in flight: one that is idle between
requests, has sent nothing yet, or is still sending its request head. Half-open
connections (slowloris) or idle keep-alive clients therefore cannot fill the cap and lock
well-behaved clients out until their timeouts run; only connections whose requests are
being served are never shed, and a new connection is refused when they alone fill the cap.

Imports point one way: this module creates :class:`HTTPProtocol` instances, and a protocol
reaches the server only through the :class:`~server.http.protocol.ConnectionManager`
interface declared beside it, which :class:`HTTPServer` implements.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from core.config import Settings
from server.http.protocol import Handler, HTTPProtocol

log = logging.getLogger("nve.http")


CAP_WARNING_INTERVAL = 10.0
"""Least seconds between two warnings about the connection cap (an attack makes thousands)."""


class HTTPServer:
    """Accepts connections for one handler; :meth:`shutdown` drains them gracefully."""

    def __init__(self, settings: Settings, handler: Handler) -> None:
        self.settings = settings
        self.handler = handler
        self._connections: set[HTTPProtocol] = set()
        self._waiting: dict[HTTPProtocol, None] = {}
        """Open connections without a request in flight, the longest waiting first."""
        self._shed = self._refused = 0
        self._warned_at = -CAP_WARNING_INTERVAL
        self._server: asyncio.AbstractServer | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> None:
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(lambda: HTTPProtocol(self), sock=sock, backlog=4096)
        else:
            self._server = await loop.create_server(lambda: HTTPProtocol(self), host, port,
                                                    backlog=4096, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def admit(self, connection: HTTPProtocol) -> bool:
        """Register a new connection; at the cap, shed the longest-waiting connection
        without a request in flight, or refuse the new one if every connection has one."""
        if len(self._connections) >= self.settings.max_connections:
            if not self._waiting:
                self._refused += 1
                self._warn_at_cap()
                return False
            oldest = next(iter(self._waiting))
            self.discard(oldest)
            oldest.shed()
            self._shed += 1
            self._warn_at_cap()
        self._connections.add(connection)
        self._waiting[connection] = None
        return True

    def request_started(self, connection: HTTPProtocol) -> None:
        """``connection`` has a request in flight: it is not to be shed until it finishes."""
        self._waiting.pop(connection, None)

    def request_finished(self, connection: HTTPProtocol) -> None:
        """``connection`` waits for its next request; it is now the one that waited least."""
        if connection in self._connections:
            self._waiting[connection] = None

    def discard(self, connection: HTTPProtocol) -> None:
        self._connections.discard(connection)
        self._waiting.pop(connection, None)

    def _warn_at_cap(self) -> None:
        now = time.monotonic()
        if now - self._warned_at >= CAP_WARNING_INTERVAL:
            self._warned_at = now
            log.warning("%d open connections is the cap: %d idle or half-open ones shed and %d new ones "
                        "refused so far", self.settings.max_connections, self._shed, self._refused)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def shutdown(self, deadline: float) -> None:
        """Stop accepting, close idle connections, let in-flight requests finish until
        ``deadline`` (a ``time.monotonic()`` value), then abort what is left."""
        self.stop_accepting()
        for connection in list(self._connections):
            connection.shutdown()
        while any(c.busy for c in self._connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self._connections):
            if connection.busy:
                log.warning("aborting a request still running at the shutdown deadline")
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
