"""A TCP proxy whose outage is silence: open links reset, new connections accepted and never answered.

:class:`tests.tcpproxy.TCPProxy` cuts like a server that died on a live host: connects are
refused at once, so any client fails fast whatever it does. A host that vanished answers
nothing, and a connect waits out its whole timeout (2 s for the pool): that is the outage
in which a server that tried PostgreSQL again on every request would make every request
wait, so it is the one that shows whether the server stops trying.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.tcpproxy import TCPProxy


class SilentProxy(TCPProxy):
    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self._silence: asyncio.AbstractServer | None = None
        self._held: set[asyncio.StreamWriter] = set()
        self.unanswered = 0
        """Connections accepted while silent (each one a client waiting out its connect timeout)."""

    async def silence(self) -> None:
        """Reset every relay, then accept on the same port and never answer."""
        await self.cut()
        self._silence = await asyncio.start_server(self._hold, "127.0.0.1", self.port)

    async def restore(self) -> None:
        """End the silence (resetting the connections it held) and relay again."""
        await self._end_silence()
        await super().restore()

    async def close(self) -> None:
        await self._end_silence()
        await super().close()

    async def _end_silence(self) -> None:
        if self._silence is not None:
            self._silence.close()
            await self._silence.wait_closed()
            self._silence = None
        for writer in list(self._held):
            writer.transport.abort()
        self._held.clear()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.unanswered += 1
        self._held.add(writer)
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass
        self._held.discard(writer)
        writer.transport.abort()
