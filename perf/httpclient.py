"""A minimal keep-alive HTTP/1.1 load client on asyncio protocols.

General-purpose clients (httpx, aiohttp) spend more CPU per request than the server under
test, so the harness would measure itself. This one writes pre-built request bytes and
parses only the status line and Content-Length of each response: enough to time it and
count errors, at a few microseconds per request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Target:
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 80)


def build_request(method: str, path: str, host: str, body: bytes = b"",
                  headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if body or method in ("POST", "PUT"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)
    """``time.perf_counter()`` at each response (one clock for every process): throughput over time."""
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


class _Connection(asyncio.Protocol):
    """One keep-alive connection that sends the next request when a response completes."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._try_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))
        if not self.lost.done():
            self.lost.set_result(None)

    def _try_complete(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        body = bytes(self.buffer[end + 4:total])
        del self.buffer[:total]
        status = int(head[9:12])
        waiter, self.waiter = self.waiter, None
        waiter.set_result((status, body))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)  # type: ignore[union-attr]
        return await self.waiter


async def open_connection(target: Target) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Connection, target.host, target.port)
    return protocol


async def run_load(target: Target, make_request, concurrency: int, duration: float,
                   expect: int | frozenset[int]) -> Results:
    """``concurrency`` connections each sending ``make_request(i, n)`` back to back for ``duration`` s;
    a status not in ``expect`` counts as an error."""
    expected = frozenset((expect,)) if isinstance(expect, int) else expect
    results = Results()
    deadline = time.perf_counter() + duration

    async def worker(index: int) -> None:
        connection = await open_connection(target)
        n = 0
        while time.perf_counter() < deadline:
            data = make_request(index, n)
            n += 1
            started = time.perf_counter()
            try:
                status, _ = await connection.request(data)
            except ConnectionError:
                results.errors += 1
                connection = await open_connection(target)
                continue
            now = time.perf_counter()
            results.latencies.append(now - started)
            results.finished.append(now)
            results.statuses[status] = results.statuses.get(status, 0) + 1
            if status not in expected:
                results.errors += 1
        connection.transport.close()  # type: ignore[union-attr]

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return results
