"""The request a handler sees: head fields, a body it pulls on demand, and the app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import msgspec

from server.http.response import HTTPError

if TYPE_CHECKING:
    from server.app import App

BodyReader = Callable[[], Awaitable[bytes | None]]
"""Returns the next chunk of the body, or None once it has all been read."""

_decoder = msgspec.json.Decoder()


class Headers:
    """Request headers, looked up case-insensitively (h11 gives lower-cased names)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def get(self, name: str, default: str | None = None) -> str | None:
        key = name.lower().encode("latin-1")
        for header, value in self._raw:
            if header == key:
                return value.decode("latin-1")
        return default

    def getall(self, name: str) -> list[str]:
        key = name.lower().encode("latin-1")
        return [value.decode("latin-1") for header, value in self._raw if header == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        return self._raw


class Request:
    __slots__ = ("method", "target", "path", "query_string", "headers", "client", "request_id",
                 "content_length", "path_params", "body_limit", "state", "app", "_reader",
                 "_query", "_consumed", "scheme")

    def __init__(self, *, method: str, target: bytes, headers: list[tuple[bytes, bytes]],
                 client: tuple[str, int] | None, request_id: str, content_length: int | None,
                 reader: BodyReader, app: App | None = None, scheme: str = "http") -> None:
        self.method = method
        self.target = target
        raw_path, _, query = target.partition(b"?")
        self.path = unquote(raw_path.decode("latin-1"))
        self.query_string = query.decode("latin-1")
        self.headers = Headers(headers)
        self.client = client
        self.request_id = request_id
        self.content_length = content_length
        self.path_params: dict[str, Any] = {}
        self.body_limit = 1 << 20
        self.state: dict[str, Any] = {}
        self.app = app
        self.scheme = scheme
        self._reader = reader
        self._query: dict[str, str] | None = None
        self._consumed = False

    @property
    def query(self) -> dict[str, str]:
        """Query parameters; the last value wins when a name repeats."""
        if self._query is None:
            self._query = dict(parse_qsl(self.query_string, keep_blank_values=True))
        return self._query

    async def stream(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk as it arrives, at most ``body_limit`` bytes in all (else 413)."""
        if self._consumed:
            raise RuntimeError("the request body was already read")
        self._consumed = True
        if self.content_length is not None and self.content_length > self.body_limit:
            raise _too_large(self.body_limit)
        received = 0
        while (chunk := await self._reader()) is not None:
            received += len(chunk)
            if received > self.body_limit:
                raise _too_large(self.body_limit)
            yield chunk

    async def body(self) -> bytes:
        """The whole body, at most ``body_limit`` bytes (else 413)."""
        return b"".join([chunk async for chunk in self.stream()])

    async def json(self) -> Any:
        """The body decoded as JSON; 400 when it is empty or not JSON."""
        data = await self.body()
        if not data:
            raise HTTPError(400, "Request body must be a JSON document")
        try:
            return _decoder.decode(data)
        except msgspec.DecodeError as error:
            raise HTTPError(400, f"Request body is not valid JSON: {error}") from None


def _too_large(limit: int) -> HTTPError:
    return HTTPError(413, f"Request body is larger than the limit of {limit} bytes",
                     extra={"limit": limit}, close=True)
