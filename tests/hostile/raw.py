"""A byte-exact HTTP/1.1 client for hostile requests: what is written is what is sent.

httpx and requests normalise a target (``..`` segments, percent-encoding) and refuse
malformed headers; these tests need the server to see exactly the bytes they choose.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

READ_TIMEOUT = 10.0


@dataclass(slots=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    """One keep-alive connection to the server; each :meth:`request` reads one whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def __aenter__(self) -> RawConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._writer.close()

    async def send(self, data: bytes) -> None:
        """Write ``data``; a server that stops reading and closes midway still gets to answer."""
        self._writer.write(data)
        try:
            await self._writer.drain()
        except ConnectionResetError:
            pass  # its answer, sent before the close, is still to be read

    async def request(self, method: str, target: str | bytes, *, headers: dict[str, str] | None = None,
                      body: bytes = b"", declared_length: int | None = None) -> RawResponse:
        """Send one request (``declared_length`` may claim more than ``body``) and read its answer."""
        raw_target = target.encode("latin-1") if isinstance(target, str) else target
        lines = [b"%s %s HTTP/1.1" % (method.encode(), raw_target), b"Host: 127.0.0.1"]
        lines += [f"{name}: {value}".encode("latin-1") for name, value in (headers or {}).items()]
        length = len(body) if declared_length is None else declared_length
        if length or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: %d" % length)
        await self.send(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        return await self.response()

    async def response(self) -> RawResponse:
        async with asyncio.timeout(READ_TIMEOUT):
            status_line = await self._reader.readline()
            if not status_line:
                raise ConnectionError("the server closed the connection without answering")
            headers: dict[str, str] = {}
            while (line := await self._reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self._reader.readexactly(int(headers.get("content-length", "0")))
        return RawResponse(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self) -> bool:
        """True once the server has closed the connection and sent nothing more (EOF, or a
        reset when it closed with request bytes unread)."""
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                return await self._reader.read(1) == b""
        except ConnectionResetError:
            return True
