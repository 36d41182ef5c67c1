"""What handlers return: a whole response, a streamed one, or a protocol switch.

Header names and values are ``str`` here; the protocol encodes them once, when it writes.
Every error body is ``{"error": "<sentence>", ...}`` as docs/CONTRACT.md section 2 says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from core.errors import DomainError

HeaderList = list[tuple[str, str]]

_encoder = msgspec.json.Encoder()
JSON = "application/json"


@dataclass(slots=True)
class Response:
    status: int = 200
    headers: HeaderList = field(default_factory=list)
    body: bytes = b""


@dataclass(slots=True)
class StreamingResponse:
    """A body produced piece by piece; written with backpressure, never buffered whole."""

    status: int
    headers: HeaderList
    chunks: AsyncIterable[bytes]
    content_length: int | None = None


@dataclass(slots=True)
class Upgrade:
    """Answer 101 and hand the transport to another protocol.

    ``on_switch(transport, leftover)`` is called once the 101 head is written, with the
    bytes already read past the handshake; it returns the protocol that now owns the
    transport.
    """

    headers: HeaderList
    on_switch: Callable[[asyncio.Transport, bytes], asyncio.Protocol]


AnyResponse = Response | StreamingResponse | Upgrade


class HTTPError(DomainError):
    """Raised by handlers (and the request body readers) to answer with a JSON error: the
    branch of the one error tree (core/errors.py) whose status is chosen where it is raised."""

    def __init__(self, status: int, message: str, *, headers: HeaderList | None = None,
                 extra: dict[str, Any] | None = None, close: bool = False) -> None:
        super().__init__(message, **(extra or {}))
        self.status = status
        self.message = message
        self.headers = headers or []
        self.close = close

    def to_response(self) -> Response:
        return error_to_response(self)


def error_to_response(error: DomainError) -> Response:
    """The answer to ``error``: its status, ``{"error": sentence, **extra}``, its headers."""
    response = error_response(error.status, str(error), **error.extra)
    response.headers.extend(error.headers)
    if error.close:
        response.headers.append(("connection", "close"))
    return response


def encode_json(data: Any) -> bytes:
    return _encoder.encode(data)


def json_response(data: Any, status: int = 200, headers: HeaderList | None = None) -> Response:
    return raw_json_response(_encoder.encode(data), status, headers)


def raw_json_response(body: bytes, status: int = 200, headers: HeaderList | None = None) -> Response:
    """A response whose body is JSON already encoded (by PostgreSQL, say)."""
    all_headers = [("content-type", JSON)]
    if headers:
        all_headers.extend(headers)
    return Response(status, all_headers, body)


def error_response(status: int, message: str, /, **extra: Any) -> Response:
    return json_response({"error": message, **extra}, status)
