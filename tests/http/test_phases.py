"""The named states of a connection, step by step: HTTPConnection's (sans-I/O) and
HTTPProtocol's phases over a real socket: keep-alive, close, lingering, upgrade, shutdown.
States are compared by name, as a failing assertion then shows them.

Every change of phase goes through ``HTTPProtocol._enter``, which checks the transition
table while assertions are on; the fixture records the changes as well.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from core.config import Settings
from server.http.connection import HTTPConnection, RequestHead
from server.http.protocol import HTTPProtocol, Phase
from server.http.request import Request
from server.http.response import AnyResponse, Response, Upgrade
from server.http.server import HTTPServer

GET = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"


# -- HTTPConnection: our side of each cycle ------------------------------------------------

def test_connection_states_of_a_keep_alive_cycle() -> None:
    conn = HTTPConnection()
    assert conn.state.name == "IDLE"
    conn.receive_data(GET)
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.state.name == "SEND_RESPONSE"
    conn.send_head(200, [], 2)
    assert conn.state.name == "SEND_BODY"
    conn.send_body(b"ok")
    conn.send_end()
    assert conn.state.name == "DONE" and conn.keep_alive
    conn.start_next_cycle()
    assert conn.state.name == "IDLE"
    assert repr(conn) == "<HTTPConnection IDLE (client IDLE)>"


def test_connection_states_of_a_response_that_closes() -> None:
    conn = HTTPConnection()
    conn.receive_data(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    conn.next_event()
    conn.send_response(200, [], b"bye")
    assert conn.state.name == "MUST_CLOSE" and not conn.keep_alive
    assert "MUST_CLOSE" in repr(conn)


def test_connection_state_of_a_switch() -> None:
    conn = HTTPConnection()
    conn.receive_data(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    conn.next_event()
    conn.send_switch([("upgrade", "echo"), ("connection", "Upgrade")])
    assert conn.state.name == "SWITCHED_PROTOCOL" and not conn.keep_alive


# -- HTTPProtocol over a socket ------------------------------------------------------------

class Echo(asyncio.Protocol):
    """What an ``Upgrade`` switches to here: it writes back what it reads."""

    def __init__(self, transport: asyncio.Transport, leftover: bytes) -> None:
        self.transport = transport
        transport.write(leftover)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class App:
    """The handler: an echo upgrade, a 413 that leaves the body unread, a big answer held
    until ``release`` is set, or a small 200."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, request: Request) -> AnyResponse:
        if request.headers.get("upgrade") == "echo":
            return Upgrade(headers=[("upgrade", "echo"), ("connection", "Upgrade")], on_switch=Echo)
        if request.method == "POST":
            return Response(413, [("content-type", "text/plain")], b"too big")  # the body left unread
        if request.path == "/held":
            self.started.set()
            await self.release.wait()
            return Response(200, [("content-type", "text/plain")], BIG)
        return Response(200, [("content-type", "text/plain")], b"ok")


BIG = b"x" * (32 << 20)  # far more than the socket buffers hold: the transport keeps the rest
Phases = dict[HTTPProtocol, list[str]]


@pytest.fixture
def phases(monkeypatch: pytest.MonkeyPatch) -> Phases:
    """Each connection's phases, from IDLE on, as they are entered."""
    seen: Phases = {}
    enter = HTTPProtocol._enter

    def recording(self: HTTPProtocol, phase: Phase) -> None:
        seen.setdefault(self, [Phase.IDLE.name]).append(phase.name)
        enter(self, phase)

    monkeypatch.setattr(HTTPProtocol, "_enter", recording)
    return seen


@pytest.fixture
async def http() -> AsyncIterator[HTTPServer]:
    server = HTTPServer(Settings(), App())
    await server.start("127.0.0.1", 0)
    yield server
    await server.shutdown(time.monotonic() + 1)


@pytest.fixture
def port(http: HTTPServer) -> int:
    assert http.port is not None
    return http.port


async def settled(phases: Phases, *last: str) -> tuple[HTTPProtocol, list[str]]:
    """The one connection's protocol and phases once it reached one of ``last``."""
    for _ in range(500):
        if phases and next(iter(phases.values()))[-1] in last:
            break
        await asyncio.sleep(0.01)
    [(protocol, seen)] = phases.items()
    return protocol, seen


async def response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head + await reader.readexactly(length)


async def test_a_keep_alive_connection_returns_to_idle_after_each_request(port: int, phases: Phases) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):
        writer.write(GET)
        assert (await response(reader)).startswith(b"HTTP/1.1 200 ")
    writer.close()
    protocol, seen = await settled(phases, "CLOSED")
    assert seen == ["IDLE", "RECEIVING_HEAD", "IN_REQUEST", "IDLE",
                    "RECEIVING_HEAD", "IN_REQUEST", "IDLE", "CLOSED"]
    assert repr(protocol).startswith("<HTTPProtocol CLOSED (IDLE)")


async def test_a_request_that_ends_the_connection_goes_through_closing(port: int, phases: Phases) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"connection: close" in await reader.read()
    writer.close()
    protocol, seen = await settled(phases, "CLOSED")
    assert seen == ["IDLE", "RECEIVING_HEAD", "IN_REQUEST", "CLOSING", "CLOSED"]
    assert repr(protocol).startswith("<HTTPProtocol CLOSED (MUST_CLOSE)")


async def test_a_request_left_unread_lingers_until_the_clients_end_of_stream(port: int, phases: Phases) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
    assert (await response(reader)).startswith(b"HTTP/1.1 413 ")
    protocol, seen = await settled(phases, "LINGERING")
    assert not protocol.busy and "LINGERING" in repr(protocol)
    writer.write(b"more of the body, dropped")
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()
    protocol, seen = await settled(phases, "CLOSED")
    assert seen == ["IDLE", "RECEIVING_HEAD", "IN_REQUEST", "LINGERING", "CLOSED"]


async def test_an_upgrade_switches_the_transport_to_another_protocol(port: int, phases: Phases) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly ")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    writer.write(b"late")
    assert await reader.readexactly(10) == b"early late"
    protocol, seen = await settled(phases, "SWITCHED")
    assert seen == ["IDLE", "RECEIVING_HEAD", "IN_REQUEST", "SWITCHED"]
    assert repr(protocol).startswith("<HTTPProtocol SWITCHED (SWITCHED_PROTOCOL)")
    writer.close()


async def test_shutdown_during_a_request_lets_its_response_out_whole(http: HTTPServer, port: int,
                                                                     phases: Phases) -> None:
    app = http.handler
    assert isinstance(app, App)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
    await app.started.wait()
    shutdown = asyncio.create_task(http.shutdown(time.monotonic() + 10))
    await asyncio.sleep(0.05)
    protocol, seen = await settled(phases, "IN_REQUEST")
    assert protocol.busy and not shutdown.done()
    app.release.set()
    await asyncio.sleep(0.2)  # the client reads nothing yet: the answer waits in the transport
    protocol, seen = await settled(phases, "CLOSING")
    assert protocol.busy and not shutdown.done()  # CLOSING is busy: shutdown waits, not aborts
    answer = await response(reader)
    assert answer.endswith(BIG)
    await shutdown
    writer.close()
    protocol, seen = await settled(phases, "CLOSED")
    assert seen == ["IDLE", "RECEIVING_HEAD", "IN_REQUEST", "CLOSING", "CLOSED"]
