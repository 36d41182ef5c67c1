"""A Python asyncio client for ``/ws``: typed messages, subscriptions, automatic reconnect.

Built on wsproto over asyncio streams (no extra dependency). Used by the tests, perf/
and embedders::

    async with WsClient("ws://127.0.0.1:3001/ws") as client:
        await client.subscribe(["trim-1"])
        async for message in client:          # WsMessage(type, data); welcome pings included
            if message.type == "complete":
                break

After the first connection, a lost connection is re-opened with exponential backoff and
full jitter (``base_delay * 2**n``, at most ``max_delay``), and the subscriptions are
sent again, so the latest state of each followed operation arrives at once. Protocol
pings are answered as they come. Iteration ends once :meth:`close` was called, or the
connection was lost with ``reconnect=False``; ``close_code`` then says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Ping, RejectConnection, Request, TextMessage

from core.tasks import cancel_and_wait


class _End(enum.Enum):
    """The inbox's end marker: the client is closed for good."""

    END = enum.auto()


_END = _End.END


@dataclass(frozen=True, slots=True)
class WsMessage:
    type: str
    data: Any


class HandshakeFailed(Exception):
    """The server answered the upgrade with an HTTP status instead of 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"WebSocket handshake refused with HTTP {status}")
        self.status = status


class WsClient:
    def __init__(self, url: str, *, origin: str | None = None, headers: list[tuple[str, str]] | None = None,
                 reconnect: bool = True, base_delay: float = 0.25, max_delay: float = 30.0,
                 open_timeout: float = 10.0) -> None:
        """``headers`` go on every handshake: ``("authorization", "Bearer <key>")`` makes the
        connection the key's tenant's, again after each reconnect."""
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if parts.scheme == "wss" else 80)
        self._netloc = parts.netloc
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._ssl = parts.scheme == "wss"
        self._origin = origin
        self._headers = [(name.encode(), value.encode()) for name, value in headers or []]
        self._reconnect = reconnect
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._open_timeout = open_timeout
        self.subscriptions: set[str] = set()
        self.client_id: str | None = None
        """From the latest welcome message; changes on every reconnect."""
        self.reconnects = 0
        self.close_code: int | None = None
        self._inbox: asyncio.Queue[WsMessage | _End] = asyncio.Queue()
        self._ws: WSConnection | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._parts: list[str] = []  # fragments of the text message being received
        self._closing = False

    async def __aenter__(self) -> WsClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the first connection; raises ``HandshakeFailed`` or ``OSError`` if it fails."""
        reader = await asyncio.wait_for(self._open(), self._open_timeout)
        self._task = asyncio.create_task(self._run(reader))

    # -- sending --------------------------------------------------------------------------

    async def send(self, message_type: str, data: Any = None) -> None:
        """Send one JSON message; dropped silently while reconnecting (it is re-sent state only)."""
        if self._ws is None or self._writer is None:
            return
        payload = json.dumps({"type": message_type, "data": data})
        with contextlib.suppress(Exception):  # a dying socket: the reader task notices and reconnects
            self._writer.write(self._ws.send(Message(data=payload)))
            await self._writer.drain()

    async def ping(self, data: Any = None) -> None:
        """A JSON ping; the server answers ``pong`` with the same data."""
        await self.send("ping", data)

    async def subscribe(self, operation_ids: list[str]) -> None:
        self.subscriptions.update(operation_ids)
        await self.send("subscribe", {"operationIds": list(operation_ids)})

    async def unsubscribe(self, operation_ids: list[str]) -> None:
        self.subscriptions.difference_update(operation_ids)
        await self.send("unsubscribe", {"operationIds": list(operation_ids)})

    async def close(self, code: int = 1000) -> None:
        self._closing = True
        if self._ws is not None and self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.write(self._ws.send(CloseConnection(code=code)))
                self._writer.close()
        await cancel_and_wait(self._task)
        self._inbox.put_nowait(_END)

    # -- receiving ------------------------------------------------------------------------

    def __aiter__(self) -> WsClient:
        return self

    async def __anext__(self) -> WsMessage:
        item = await self._inbox.get()
        if item is _END:
            self._inbox.put_nowait(_END)
            raise StopAsyncIteration
        return item

    async def recv(self, timeout: float | None = None) -> WsMessage:
        """The next message; ``ConnectionError`` once the client is closed for good."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except StopAsyncIteration:
            raise ConnectionError(f"WebSocket closed ({self.close_code})") from None

    async def recv_type(self, *types: str, timeout: float | None = None) -> WsMessage:
        """The next message of one of ``types``, skipping others (pings, say)."""
        while True:
            message = await self.recv(timeout)
            if message.type in types:
                return message

    # -- the connection -------------------------------------------------------------------

    async def _open(self) -> asyncio.StreamReader:
        reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._ssl or None)
        ws = WSConnection(ConnectionType.CLIENT)
        self._parts = []
        headers = ([(b"origin", self._origin.encode())] if self._origin else []) + self._headers
        writer.write(ws.send(Request(host=self._netloc, target=self._target, extra_headers=headers)))
        while True:
            data = await reader.read(65536)
            if not data:
                writer.close()
                raise ConnectionError("connection closed during the WebSocket handshake")
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    self._ws, self._writer = ws, writer
                    # Messages that came with the 101 are still queued in ws: _handle takes them.
                    self._handle(ws.events())
                    return reader
                if isinstance(event, RejectConnection):
                    writer.close()
                    raise HandshakeFailed(event.status_code)

    async def _run(self, reader: asyncio.StreamReader) -> None:
        attempt = 0
        while True:
            await self._read(reader)
            if self._closing or not self._reconnect:
                self._inbox.put_nowait(_END)
                return
            while True:
                attempt += 1
                delay = random.uniform(0, min(self._max_delay, self._base_delay * 2 ** attempt))
                await asyncio.sleep(delay)
                try:
                    reader = await asyncio.wait_for(self._open(), self._open_timeout)
                except (OSError, HandshakeFailed, TimeoutError):
                    continue
                break
            attempt = 0
            self.reconnects += 1
            if self.subscriptions:
                await self.send("subscribe", {"operationIds": sorted(self.subscriptions)})

    async def _read(self, reader: asyncio.StreamReader) -> None:
        ws = self._ws
        assert ws is not None
        while True:
            try:
                data = await reader.read(65536)
            except OSError:
                data = b""
            ws.receive_data(data or None)
            if not self._handle(ws.events()) or not data:
                if self._writer is not None:
                    self._writer.close()
                self._ws = self._writer = None
                return

    def _handle(self, events: Any) -> bool:
        """Act on wsproto events; False once the connection is over."""
        parts = self._parts
        for event in events:
            if isinstance(event, TextMessage):
                parts.append(event.data)
                if event.message_finished:
                    self._deliver("".join(parts))
                    parts.clear()
            elif isinstance(event, Ping):
                self._write(event.response())
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
                self._write(event.response())
                return False
        return True

    def _write(self, event: Any) -> None:
        if self._ws is not None and self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.write(self._ws.send(event))

    def _deliver(self, text: str) -> None:
        try:
            message = json.loads(text)
            item = WsMessage(message["type"], message.get("data"))
        except (ValueError, KeyError, TypeError):
            item = WsMessage("invalid", text)
        if item.type == "ping" and isinstance(item.data, dict) and "clientId" in item.data:
            self.client_id = item.data["clientId"]
        self._inbox.put_nowait(item)
