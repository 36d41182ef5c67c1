"""The listening socket and the set of live connections: admission, shutdown, draining."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from core.config import Settings
from server.http.protocol import Handler, HTTPProtocol

log = logging.getLogger("nve.http")


class HTTPServer:
    """Accepts connections for one handler; :meth:`shutdown` drains them gracefully."""

    def __init__(self, settings: Settings, handler: Handler) -> None:
        self.settings = settings
        self.handler = handler
        self._connections: set[HTTPProtocol] = set()
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
        """Register a new connection, or refuse it when the cap is reached."""
        if len(self._connections) >= self.settings.max_connections:
            log.warning("connection refused: %d open connections is the cap", len(self._connections))
            return False
        self._connections.add(connection)
        return True

    def discard(self, connection: HTTPProtocol) -> None:
        self._connections.discard(connection)

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
