"""A raw-frame WebSocket client and the fixtures of the Autobahn-style conformance tests.

No client library would send what those tests need (reserved bits, reserved opcodes,
fragmented pings, bad close codes, a frame cut into 1-byte writes), so
:class:`RawClient` writes the bytes a test builds with :func:`tests.ws.frames.client_frame`
and reads the server's frames one by one, checking each is well formed for a server
(unmasked, no RSV bit, a known opcode, control frames unfragmented and at most 125 bytes).

The fixtures give one real server per test module (a throwaway database, the default
WebSocket limits: 1 MiB per message, 128 fragments), a ``neighbour`` connected for the
whole module (every case proves it is still served afterwards) and a fresh ``client``
per test. Reads wait at most ``TIMEOUT`` seconds: a guard against hangs, never a speed
assertion.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from tests.conftest import throwaway_database
from tests.ws.frames import CLOSE, CONTINUATION, PING, PONG, TEXT, client_frame
from tests.ws.test_bus import eventually

if TYPE_CHECKING:
    from server.cli.serve import Running

TIMEOUT = 10.0
MAX_MESSAGE = 1 << 20
"""The server's default limit on one inbound message (WsSettings.max_message_bytes)."""

PING_FLOOR = len(b'{"type":"ping","data":""}')
"""Bytes of the smallest JSON ping; :func:`json_ping` pads up from there."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame as the server sent it (unmasked)."""

    opcode: int
    payload: bytes
    fin: bool = True


class RawClient:
    """One WebSocket connection spoken frame by frame; see the module docstring."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, response: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.response = response
        """The handshake's answer: status line and headers, as received."""
        self.client_id = ""
        """The server's id for this client, from its welcome message."""

    @classmethod
    async def connect(cls, port: int, extra_headers: str = "", welcome: bool = True) -> RawClient:
        """Open ``/ws`` (``extra_headers``: more header lines, each ending in CRLF); read the welcome."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4 * MAX_MESSAGE)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"{extra_headers}\r\n").encode())
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert response.startswith(b"HTTP/1.1 101 "), response
        client = cls(reader, writer, response)
        if welcome:
            message = await client.message()
            assert message["type"] == "ping" and "clientId" in message["data"], message
            client.client_id = message["data"]["clientId"]
        return client

    def header(self, name: str) -> str | None:
        """A header of the handshake answer, or None."""
        for line in self.response.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    # -- writing ----------------------------------------------------------------------------

    async def send(self, data: bytes, chop: int | None = None) -> None:
        """Write ``data``, in writes of ``chop`` bytes each (draining between them) if given."""
        step = chop or len(data) or 1
        for start in range(0, len(data), step):
            self.writer.write(data[start:start + step])
            await self.writer.drain()

    async def send_text(self, payload: bytes, fragments: int = 1) -> None:
        """One text message, split into ``fragments`` frames of about equal size."""
        await self.send(fragmented(TEXT, payload, fragments))

    async def ping(self, data: Any) -> None:
        """A JSON ping (the contract's, not a protocol ping)."""
        await self.send(client_frame(TEXT, json.dumps({"type": "ping", "data": data}).encode()))

    # -- reading ----------------------------------------------------------------------------

    async def frame(self) -> Frame:
        """The next frame the server sent, checked to be a well-formed server frame."""
        head = await self._read(2)
        assert head[0] & 0x70 == 0, f"server set RSV bits: {head[0]:#x}"
        assert head[1] & 0x80 == 0, "server frames must not be masked"
        opcode, size = head[0] & 0x0F, head[1] & 0x7F
        assert opcode in (TEXT, CONTINUATION, CLOSE, PING, PONG), f"server sent opcode {opcode}"
        if size == 126:
            size = struct.unpack("!H", await self._read(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await self._read(8))[0]
        fin = bool(head[0] & 0x80)
        if opcode >= CLOSE:
            assert fin and size <= 125, "server sent a fragmented or oversized control frame"
        return Frame(opcode, await self._read(size), fin)

    async def message(self) -> dict[str, Any]:
        """The next frame, which must be a whole JSON text message."""
        frame = await self.frame()
        assert frame.opcode == TEXT and frame.fin, frame
        return json.loads(frame.payload)

    async def pong(self, data: Any) -> None:
        """The next frame must be the JSON pong answering ``data``."""
        assert await self.message() == {"type": "pong", "data": data}

    async def error(self) -> str:
        """The next frame must be an ``error`` message about the client's own message; its text."""
        message = await self.message()
        assert message["type"] == "error" and set(message["data"]) == {"error"}, message
        return message["data"]["error"]

    async def closed(self) -> tuple[int | None, bytes]:
        """The next frame must be a close, and then the stream must end; (code, reason bytes).

        The code is None for a close frame without payload.
        """
        frame = await self.frame()
        assert frame.opcode == CLOSE, f"expected a close frame, got {frame}"
        rest = await asyncio.wait_for(self.reader.read(), TIMEOUT)
        assert rest == b"", f"the server sent {rest[:60]!r} after its close frame"
        self.writer.close()
        if not frame.payload:
            return None, b""
        return struct.unpack("!H", frame.payload[:2])[0], frame.payload[2:]

    async def close_code(self) -> int | None:
        """:meth:`closed`, the code only."""
        return (await self.closed())[0]

    async def _read(self, size: int) -> bytes:
        try:
            return await asyncio.wait_for(self.reader.readexactly(size), TIMEOUT)
        except asyncio.IncompleteReadError as error:
            raise AssertionError(f"the server ended the stream after {error.partial[:60]!r}") from None

    async def assert_alive(self) -> None:
        """A JSON ping round trip with fresh data: the server still serves this client."""
        tag = uuid.uuid4().hex
        await self.ping(tag)
        await self.pong(tag)

    def abort(self) -> None:
        self.writer.transport.abort()


def fragmented(opcode: int, payload: bytes, fragments: int) -> bytes:
    """``payload`` as one message of ``fragments`` frames (the first ``opcode``, then continuations)."""
    step = -(-len(payload) // fragments) if payload else 0
    pieces = [payload[i * step:(i + 1) * step] for i in range(fragments)]
    return b"".join(client_frame(opcode if i == 0 else CONTINUATION, piece, fin=i == fragments - 1)
                    for i, piece in enumerate(pieces))


def json_ping(size: int, char: str = "a") -> tuple[bytes, str]:
    """A JSON ping exactly ``size`` bytes long (``size >= PING_FLOOR``) and the data it carries."""
    data = char * ((size - PING_FLOOR) // len(char.encode()))
    payload = json.dumps({"type": "ping", "data": data}, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(payload) == size, (len(payload), size)
    return payload, data


# -- fixtures ------------------------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ws_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """One server with default settings for a whole module, on a database of its own."""
    from core.config import Settings
    from server.cli.serve import start

    async with throwaway_database() as dsn:
        data_dir: Path = tmp_path_factory.mktemp("ws-server")
        # Redis down on purpose, as for conftest's servers: the hub must serve without it.
        settings = Settings(host="127.0.0.1", port=0, data_dir=data_dir, database_url=dsn,
                            redis_url="redis://127.0.0.1:1/0", workers=0)
        running = await start(settings, dsn)
        try:
            yield running
        finally:
            await running.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def neighbour(ws_server: Running) -> AsyncIterator[RawClient]:
    """A client connected while every case of the module runs; cases check it is still served.

    It follows one operation that never runs, so broadcasts a case publishes do not come
    between its pings and pongs.
    """
    client = await RawClient.connect(ws_server.port)
    await client.send(client_frame(TEXT, b'{"type":"subscribe","data":{"operationIds":["neighbour-only"]}}'))
    yield client
    client.abort()


@pytest_asyncio.fixture(loop_scope="module")
async def client(ws_server: Running, neighbour: RawClient) -> AsyncIterator[RawClient]:
    """A fresh client for one case; afterwards the server must have let go of it once it closed."""
    fresh = await RawClient.connect(ws_server.port)
    yield fresh
    fresh.abort()
    hub = ws_server.app.hub
    await eventually(lambda: fresh.client_id not in hub.clients)


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No case may make the server log an error (an exception escaping a callback shows up so)."""
    caplog.set_level(logging.WARNING)
    yield
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, [record.getMessage() for record in errors]
