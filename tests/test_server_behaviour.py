"""The HTTP server over real sockets: keep-alive, pipelining, limits, timeouts, failures, shutdown."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from server.http.response import json_response
from tests.conftest import PG_HOST, PG_PORT, dsn_for, dsn_through
from tests.tcpproxy import TCPProxy


async def raw_exchange(port: int, data: bytes, *, read_until_close: bool = True, timeout: float = 5) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    chunks = []
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
                if not read_until_close:
                    break
    finally:
        writer.close()
    return b"".join(chunks)


async def test_keep_alive_serves_many_requests_on_one_connection(server):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        for _ in range(20):
            assert (await client.get("/healthz")).status_code == 200
    # The counter of accepted connections would have grown per request without keep-alive.
    assert server.http.connection_count <= 1


async def test_pipelined_requests_are_answered_in_order(server):
    requests = b"".join(b"GET /api/projects/%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % i for i in (1, 2, 3))
    requests += b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    out = await raw_exchange(server.port, requests)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", out)
    assert statuses == [b"404", b"404", b"404", b"200"]
    assert out.index(b"Project 1 ") < out.index(b"Project 2 ") < out.index(b"Project 3 ")


async def test_chunked_request_body(server):
    body = b'{"name":"c","videoFilename":"a.mp4","videoUrl":"/videos/a.mp4"}'
    half = len(body) // 2
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
    out = await raw_exchange(server.port, b"POST /api/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    assert out.startswith(b"HTTP/1.1 201 ")


async def test_chunked_body_over_the_limit_is_413(start_server):
    server = await start_server(json_body_limit=1000)
    chunk = b"a" * 600
    data = (b"POST /api/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 3 + b"0\r\n\r\n")
    out = await raw_exchange(server.port, data)
    assert out.startswith(b"HTTP/1.1 413 ") and b"connection: close" in out


async def test_expect_100_continue(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    body = b'{"name":"c","videoFilename":"a.mp4","videoUrl":"/v"}'
    writer.write(b"POST /api/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body))
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100 ")
    writer.write(body)
    final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert final.startswith(b"HTTP/1.1 201 ")
    writer.close()


async def test_declared_body_over_the_limit_is_refused_without_100_continue(start_server):
    server = await start_server(json_body_limit=100)
    out = await raw_exchange(server.port, b"POST /api/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                             b"Content-Length: 5000\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ")


async def test_oversized_headers_are_431(server):
    out = await raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 ") and b'"error"' in out


async def test_malformed_request_line_is_400(server):
    out = await raw_exchange(server.port, b"NONSENSE\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and b'"error"' in out


async def test_slowloris_connection_is_closed_at_the_header_deadline(start_server):
    server = await start_server(header_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert time.monotonic() - started >= 0.25
    writer.close()


async def test_a_stalled_request_body_is_dropped(start_server):
    server = await start_server(body_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /api/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"na")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_idle_keep_alive_connection_is_closed(start_server):
    server = await start_server(keepalive_timeout=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 ")
    await asyncio.wait_for(reader.readexactly(15), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_a_failing_handler_is_a_json_500_with_a_request_id(server):
    async def boom(request):
        raise RuntimeError("bug")

    server.router.add("GET", "/boom", boom)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        response = await client.get("/boom")
        assert response.status_code == 500
        body = response.json()
        assert body["error"] == "Internal server error"
        assert body["requestId"] == response.headers["x-request-id"]
        assert "bug" not in response.text
        # The same connection and the server go on.
        assert (await client.get("/healthz")).status_code == 200


async def test_a_slow_reader_does_not_make_the_server_buffer_a_stream(server):
    from server.http.response import StreamingResponse

    produced = 0

    async def endless(request):
        async def chunks():
            nonlocal produced
            block = b"x" * 65536
            for _ in range(2000):  # 128 MiB if nothing pushed back
                produced += len(block)
                yield block

        return StreamingResponse(200, [("content-type", "application/octet-stream")], chunks())

    server.router.add("GET", "/stream", endless)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=1024)
    writer.transport.set_write_buffer_limits(0)
    writer.transport.pause_reading()
    writer.write(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await asyncio.sleep(0.5)
    assert produced < 16 * 1024 * 1024
    writer.transport.abort()


async def test_graceful_shutdown_finishes_the_request_in_flight(start_server):
    server = await start_server()
    entered = asyncio.Event()

    async def slow(request):
        entered.set()
        await asyncio.sleep(0.4)
        return json_response({"finished": True})

    server.router.add("GET", "/slow", slow)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        pending = asyncio.create_task(client.get("/slow"))
        await entered.wait()
        stopping = asyncio.create_task(server.stop())
        response = await pending
        await stopping
    assert response.status_code == 200 and response.json() == {"finished": True}
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)


async def test_database_outage_is_a_fast_503_and_recovers(migrated_dsn, start_server):
    proxy = TCPProxy(PG_HOST, PG_PORT)
    await proxy.start()
    database = migrated_dsn.rsplit("/", 1)[1]
    server = await start_server(database_url=dsn_through(proxy.port, database))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.get("/api/projects")).status_code == 200
        await proxy.cut()
        timings = []
        for _ in range(10):
            started = time.monotonic()
            response = await client.get("/api/projects")
            timings.append(time.monotonic() - started)
            assert response.status_code == 503
            assert "unavailable" in response.json()["error"]
        assert max(timings) < 1.0, timings  # not the 2 s connect timeout, request after request
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["database"] == "down"
        await proxy.restore()
        deadline = time.monotonic() + 10
        while (await client.get("/api/projects")).status_code != 200:
            assert time.monotonic() < deadline, "the pool did not recover"
            await asyncio.sleep(0.1)
        assert (await client.get("/readyz")).status_code == 200
    await proxy.close()


async def test_dsn_helper():
    assert dsn_for("abc").endswith("/abc")
