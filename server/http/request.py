"""The request a handler sees: head fields, a body it pulls on demand, and the app.

What :meth:`Request.json` accepts, where RFC 8259 leaves a choice or a hostile client
could hurt (docs/CONTRACT.md says only "JSON, UTF-8", so these are this server's rules):

* ``Content-Type`` absent, ``application/json`` or any ``application/*+json``; any other
  declared type is a 415 (a form or ``text/plain`` post is not JSON sent by mistake).
* UTF-8 only (invalid UTF-8 is a 400); a leading byte order mark is ignored, as RFC 8259
  section 8.1 allows.
* At most ``body_limit`` bytes (1 MiB for JSON routes): 413, and the connection closes.
* Arrays and objects nested at most :data:`MAX_JSON_DEPTH` levels: 400 past it, at any
  depth (even one that would overflow the decoder's stack), so nothing downstream
  (validation, msgspec encoding, PostgreSQL ``jsonb``, the browser) sees a deeper one.
* No ``NaN``/``Infinity`` (not JSON) and no number past float range (``1e400``): 400.
* No U+0000 in any string: PostgreSQL text and ``jsonb`` cannot hold it, so 400 rather
  than a failed write.
* Duplicate keys: the last one wins (as in most decoders, and in JavaScript's).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

import msgspec

from server.http.response import HTTPError

BodyReader = Callable[[], Awaitable[bytes | None]]
"""Returns the next chunk of the body, or None once it has all been read."""

_decoder = msgspec.json.Decoder()
_BOM = b"\xef\xbb\xbf"
# `\u0000` in a JSON string: the escape preceded by an even number of backslashes (itself unescaped).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
MAX_JSON_DEPTH = 64


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
                 reader: BodyReader, app: Any = None, scheme: str = "http") -> None:
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
        self.app: Any = app
        """The application object, set by the dispatch above this layer (None until then).

        ``Any`` because the transport knows nothing of what runs on it; handlers reach the
        application through a typed accessor of their own rather than through this attribute.
        """
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
        """The body decoded as JSON, by the rules in this module's docstring (else 400/413/415)."""
        content_type = self.headers.get("content-type")
        if content_type is not None and not is_json_type(content_type):
            raise HTTPError(415, "Request body must be JSON (Content-Type: application/json), not "
                                 f"{content_type.split(';')[0].strip()[:100] or 'an empty Content-Type'}")
        data = await self.body()
        if data.startswith(_BOM):
            data = data[len(_BOM):]
        if not data:
            raise HTTPError(400, "Request body must be a JSON document")
        try:
            value = _decoder.decode(data)
        except RecursionError:
            raise _too_deep() from None
        except msgspec.ValidationError as error:  # valid JSON, but e.g. a number past float range
            raise HTTPError(400, f"Request body has a value this server cannot read: {error}") from None
        except msgspec.DecodeError as error:
            raise HTTPError(400, f"Request body is not valid JSON: {error}") from None
        if nesting_exceeds(value, MAX_JSON_DEPTH):
            raise _too_deep()
        if b"\\u0000" in data and _NUL_ESCAPE.search(data):
            raise HTTPError(400, "Request body contains the character U+0000, which no field accepts")
        return value


def is_json_type(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type (``application/merge-patch+json``), any parameters."""
    media_type = content_type.split(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/")
                                                 and media_type.endswith("+json"))


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels deep in ``value``.

    Level by level rather than recursively, so no depth of input can exhaust the stack.
    """
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        deeper = []
        for container in level:
            for child in container.values() if isinstance(container, dict) else container:
                if isinstance(child, (dict, list)):
                    deeper.append(child)
        level = deeper
    return False


def _too_deep() -> HTTPError:
    return HTTPError(400, f"Request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep")


def _too_large(limit: int) -> HTTPError:
    return HTTPError(413, f"Request body is larger than the limit of {limit} bytes",
                     extra={"limit": limit}, close=True)
