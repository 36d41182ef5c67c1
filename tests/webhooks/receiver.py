"""A webhook receiver on loopback: what a customer's endpoint is, for the webhook tests.

An HTTP/1.1 server (h11 over asyncio streams) on 127.0.0.1 that answers each path as the
test scripted it (a status sequence, the last one repeating, or :data:`HANG`: read the
request and never answer) and records every request, headers and body bytes as they
arrived, so a test checks signatures with the published ``standardwebhooks`` package
exactly as a receiver would. The unit tests of core/webhooks (client, sender) and the
end-to-end tests share it (tests/webhooks/conftest.py has its fixture).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import h11

HANG = None
"""A scripted answer: read the request, then never answer (until the receiver closes)."""


@dataclasses.dataclass(frozen=True)
class Received:
    """One request as it arrived: ``at`` is the wall clock (``time.time()``) once its body was read,
    ``answer`` the status the receiver gave it (None: it hung)."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answer: int | None

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook receiver on 127.0.0.1; ``url(path)`` is an endpoint, ``script(path, ...)`` its answers."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._scripts: dict[str, list[int | None]] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every connection, hanging ones included."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *answers: int | None) -> None:
        """Answer requests to ``path`` with these statuses in turn (:data:`HANG`: none), the last one
        repeating; unscripted paths answer 200. A new script replaces what is left of the old one."""
        self._scripts[path] = list(answers)

    def on(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    async def wait(self, path: str, count: int = 1, timeout: float = 20.0) -> list[Received]:
        """The requests to ``path`` once there are at least ``count`` (generous timeout: only a failure waits)."""
        await self.wait_until(lambda: len(self.on(path)) >= count, timeout, f"for {count} on {path}")
        return self.on(path)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout} s in vain {what}: {self.summary()}")
            await asyncio.sleep(0.01)

    def summary(self) -> list[tuple[str, str | None, str]]:
        return [(request.path, request.headers.get("webhook-id"), request.body[:80].decode(errors="replace"))
                for request in self.received]

    def _answer(self, path: str) -> int | None:
        script = self._scripts.get(path)
        if not script:
            return 200
        return script.pop(0) if len(script) > 1 else script[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._exchange(reader, writer)
        except (ConnectionError, h11.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER)
        while True:  # one request per connection at a time; keep-alive if the sender wants it
            request: h11.Request | None = None
            body = b""
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    connection.receive_data(data)
                    if not data and request is None:
                        return
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return
            assert request is not None
            path = request.target.decode()
            headers = {name.decode().lower(): value.decode() for name, value in request.headers}
            status = self._answer(path)
            self.received.append(Received(path, headers, body, time.time(), status))
            if status is HANG:
                await asyncio.Event().wait()  # until close() cancels this connection
            writer.write(connection.send(h11.Response(status_code=status, headers=[("content-length", "2")])))
            writer.write(connection.send(h11.Data(data=b"ok")) + connection.send(h11.EndOfMessage()))
            await writer.drain()
            if connection.our_state is h11.MUST_CLOSE:
                return
            connection.start_next_cycle()
