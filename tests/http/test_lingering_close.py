"""A response that leaves the request body unread reaches the client whole (RFC 9112 9.6).

Closing a socket with unread input makes the kernel answer with a reset, which can destroy
the response just written: a client still sending a body over the limit would see
"connection reset" instead of its 413. The server half-closes and drops what still
comes until the client's end of stream (or a short linger), then closes.
"""

from __future__ import annotations

import asyncio
from typing import Any

BODY = 8 << 20  # over the 1 MiB JSON limit, and more than the socket buffers hold


async def _post_whole_body(port: int) -> tuple[bytes, BaseException | None]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /api/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % BODY)
    failure: BaseException | None = None
    try:
        chunk = b" " * 65536
        for _ in range(BODY // len(chunk)):
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()
    except (ConnectionError, OSError) as error:
        failure = error
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    except (ConnectionError, OSError) as error:
        answer, failure = b"", failure or error
    writer.close()
    return answer, failure


async def test_a_413_survives_a_client_that_keeps_sending(server: Any) -> None:
    for _ in range(3):
        answer, failure = await _post_whole_body(server.port)
        assert failure is None, f"the connection was reset: {failure!r}"
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"connection: close" in answer.lower()


async def test_the_server_still_serves_after_lingering(server: Any) -> None:
    await _post_whole_body(server.port)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 200 ")
    writer.close()


async def test_a_lingering_connection_is_shed_for_a_newcomer_at_the_cap(start_server: Any) -> None:
    server = await start_server(max_connections=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /api/projects HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BODY + b" " * 4096)
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 413 ")
    # Still sending, so the server lingers; a newcomer at the cap must not wait for that.
    other_reader, other_writer = await asyncio.open_connection("127.0.0.1", server.port)
    other_writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await asyncio.wait_for(other_reader.read(), 10)).startswith(b"HTTP/1.1 200 ")
    assert await asyncio.wait_for(reader.read(), 10) is not None  # the lingering one was closed, not left open
    other_writer.close()
    writer.close()
