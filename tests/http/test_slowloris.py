"""Slowloris (issue #8): half-open connections must not stop service for anyone else.

Two defences, each shown here over real sockets against the whole server:

* the header deadline: a request head not complete ``header_timeout`` after its first
  byte closes the connection, however slowly the client keeps trickling bytes;
* the connection cap: when half-open or idle connections fill ``max_connections``, a new
  connection is admitted by shedding the one that has waited longest without a request
  in flight; only a cap full of requests being served refuses newcomers.
"""

from __future__ import annotations

import asyncio
import logging
import resource

import httpx
import pytest

from server.http.response import json_response

PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: "
HALF_OPEN = 2000


class HalfOpen(asyncio.Protocol):
    """A client that sends the start of a request head and never finishes it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(PARTIAL_HEAD)

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def open_half_open(port: int, count: int) -> list[HalfOpen]:
    """``count`` half-open connections, opened one after another (so their age is their order)."""
    loop = asyncio.get_running_loop()
    return [(await loop.create_connection(HalfOpen, "127.0.0.1", port))[1] for _ in range(count)]


async def trickle(clients: list[HalfOpen], interval: float) -> None:
    """One more header byte from each client every ``interval`` until the server closes it."""
    while not all(client.closed.done() for client in clients):
        for client in clients:
            if not client.closed.done():
                client.transport.write(b"a")  # type: ignore[union-attr]
        await asyncio.sleep(interval)


async def until(condition, what: str, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.fixture
def enough_file_descriptors() -> None:
    """Both ends of every connection live in this process: two descriptors each, and spare."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * HALF_OPEN + 1024
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard) if hard != resource.RLIM_INFINITY else need,
                                                    hard))


async def request_on(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str = "/healthz") -> bytes:
    """One keep-alive request on an open connection; its response head."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await asyncio.wait_for(reader.readexactly(length), 10)
    return head


async def test_2000_half_open_connections_do_not_stop_service_for_others(
        start_server, enough_file_descriptors, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="nve.http")
    server = await start_server(header_timeout=5.0)
    stalled = await open_half_open(server.port, HALF_OPEN)
    trickling = asyncio.create_task(trickle(stalled[::2], interval=0.5))  # half trickle, half stall
    await until(lambda: server.http.connection_count >= HALF_OPEN, "the server to hold them all")

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.get("/healthz")).status_code == 200
        created = await client.post("/api/projects", json={
            "name": "served", "videoFilename": "a.mp4", "videoUrl": "/videos/a.mp4"})
        assert created.status_code == 201
        fetched = await client.get(f"/api/projects/{created.json()['id']}")
        assert fetched.status_code == 200 and fetched.json()["name"] == "served"
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)  # and a fresh connection
    assert (await request_on(reader, writer)).startswith(b"HTTP/1.1 200 ")
    writer.close()
    # Those answers came while every half-open connection was still held open.
    assert not any(client.closed.done() for client in stalled)
    assert server.http.connection_count >= HALF_OPEN

    await asyncio.wait_for(asyncio.gather(*(client.closed for client in stalled)), 30)
    await trickling
    # Closed by the header deadline (trickling did not extend it), without a response.
    timed_out = [r for r in caplog.records if "request head not complete in time" in r.getMessage()]
    assert len(timed_out) == HALF_OPEN
    assert all(client.received == b"" for client in stalled)
    await until(lambda: server.http.connection_count == 0, "the server to let go of them")


async def test_half_open_connections_filling_the_cap_are_shed_oldest_first(start_server):
    server = await start_server(max_connections=20)  # header deadline 10 s: no timeout plays a part here
    stalled = await open_half_open(server.port, 20)
    await until(lambda: server.http.connection_count == 20, "the cap to fill")

    clients = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(5)]
    for reader, writer in clients:
        assert (await request_on(reader, writer)).startswith(b"HTTP/1.1 200 ")
    # Each newcomer shed the half-open connection that had waited longest (a served client,
    # idle now, is the one that waited least), and the cap held.
    await asyncio.wait_for(asyncio.gather(*(client.closed for client in stalled[:5])), 10)
    assert not any(client.closed.done() for client in stalled[5:])
    assert server.http.connection_count == 20
    for reader, writer in clients:  # the served clients' connections go on
        assert (await request_on(reader, writer)).startswith(b"HTTP/1.1 200 ")
        writer.close()
    for client in stalled[5:]:
        client.transport.close()  # type: ignore[union-attr]


async def test_idle_keep_alive_connections_filling_the_cap_are_shed_for_a_newcomer(start_server):
    server = await start_server(max_connections=3)
    idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    for reader, writer in idle:
        assert (await request_on(reader, writer)).startswith(b"HTTP/1.1 200 ")

    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert (await request_on(reader, writer)).startswith(b"HTTP/1.1 200 ")
    oldest_reader, _ = idle[0]
    assert await asyncio.wait_for(oldest_reader.read(), 10) == b""  # closed by the server
    assert (await request_on(*idle[1])).startswith(b"HTTP/1.1 200 ")
    for _, idle_writer in idle:
        idle_writer.close()
    writer.close()


async def test_a_cap_full_of_requests_in_flight_refuses_newcomers(start_server):
    server = await start_server(max_connections=2)
    entered, release = asyncio.Semaphore(0), asyncio.Event()

    async def slow(request):
        entered.release()
        await release.wait()
        return json_response({"finished": True})

    server.router.add("GET", "/slow", slow)
    busy = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
    for _, writer in busy:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
    for _ in busy:
        await asyncio.wait_for(entered.acquire(), 10)

    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await asyncio.wait_for(reader.read(), 10) == b""  # refused: nothing may be shed
    writer.close()
    release.set()
    for busy_reader, busy_writer in busy:  # and the requests being served were not disturbed
        head = await asyncio.wait_for(busy_reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 ")
        busy_writer.close()
