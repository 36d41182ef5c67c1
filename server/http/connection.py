"""A sans-I/O HTTP/1.1 server connection: bytes in, events out; responses in, bytes out.

This is a thin layer over :mod:`h11` that adds what a server needs on top of it and keeps
the same discipline: no sockets, no clocks, no tasks. The asyncio protocol feeds it what
the transport reads and writes what it returns, so every parsing and framing rule can be
tested by feeding bytes, one at a time or all at once.

What it adds to h11:

* one event vocabulary for the server (:class:`RequestHead`, :class:`BodyChunk`,
  :class:`EndOfRequest`, :class:`Closed`, :class:`BadRequest`) and the two sentinels
  :data:`NEED_DATA` and :data:`PAUSED` passed through from h11;
* protocol errors turned into a ready-to-send error response with h11's status hint
  (400, 431 for a header block over the limit, 501 for unknown transfer codings), instead
  of an exception;
* a request without a body is complete at its :class:`RequestHead` (no
  :class:`EndOfRequest` follows it); HEAD response bodies are swallowed, ``100 Continue`` is sent only if the client still waits,
  and a response that leaves the request body unread closes the connection (the unread
  bytes would otherwise be parsed as the next request);
* the switch to another protocol (WebSocket) returns the bytes already read past the
  handshake.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

import h11


Headers = list[tuple[bytes, bytes]]

NEED_DATA = h11.NEED_DATA
PAUSED = h11.PAUSED


@dataclass(slots=True)
class RequestHead:
    method: str
    target: bytes
    headers: Headers
    http_version: str
    content_length: int | None
    """The declared body size, or None for a chunked body."""
    has_body: bool
    upgrade: bytes | None = None
    """The lower-cased ``Upgrade`` token when the client asked to switch protocols."""


@dataclass(slots=True)
class BodyChunk:
    data: bytes


@dataclass(slots=True)
class EndOfRequest:
    pass


@dataclass(slots=True)
class Closed:
    """The client closed its side; nothing more will arrive."""


@dataclass(slots=True)
class BadRequest:
    """The client broke the protocol; send ``response`` and close."""

    status: int
    reason: str
    response: bytes = field(repr=False)


Event = RequestHead | BodyChunk | EndOfRequest | Closed | BadRequest | type[h11.NEED_DATA] | type[h11.PAUSED]

_PHRASES = {status.value: status.phrase.encode() for status in HTTPStatus}
_END = EndOfRequest()
_CLOSED = Closed()
_ERROR_BODY = b'{"error":"%s"}'
_REASONS = {400: "Bad request", 431: "Request header fields too large",
            501: "Transfer coding not implemented", 505: "HTTP version not supported"}


class HTTPConnection:
    """One server-side HTTP/1.1 connection's state, free of I/O."""

    def __init__(self, max_header_bytes: int = 16 * 1024) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self._max_header_bytes = max_header_bytes
        self._head_request = False
        self._body_done = True

    # -- input -----------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer; ``b""`` means end of stream."""
        self._h11.receive_data(data)

    def next_event(self) -> Event:
        """The next thing the peer said, or NEED_DATA / PAUSED."""
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as error:
            return self._bad_request(error)
        kind = type(event)
        if kind is h11.Data:
            return BodyChunk(bytes(event.data))
        if kind is h11.EndOfMessage:
            self._body_done = True
            return _END
        if kind is h11.Request:
            # h11 bounds only an incomplete head; one that arrives whole in a single read
            # is parsed whatever its size, so the limit is enforced here as well.
            size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in event.headers)
            if size > self._max_header_bytes:
                return self._bad_request(h11.RemoteProtocolError("header block too large",
                                                                 error_status_hint=431))
            return self._request_head(event)
        if kind is h11.ConnectionClosed:
            return _CLOSED
        return event  # NEED_DATA or PAUSED

    def _request_head(self, event: h11.Request) -> RequestHead:
        content_length: int | None = 0
        upgrade: bytes | None = None
        chunked = False
        for name, value in event.headers:
            if name == b"content-length":
                content_length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"upgrade":
                upgrade = value.lower()
        if chunked:
            content_length = None
        self._head_request = event.method == b"HEAD"
        has_body = content_length != 0
        self._body_done = not has_body
        if not has_body:
            # h11 reports the empty body's end as an event of its own; a request without a
            # body is complete at its head, so it is consumed here rather than by every caller.
            end = self._h11.next_event()
            assert type(end) is h11.EndOfMessage, end
        return RequestHead(
            method=event.method.decode("ascii"),
            target=event.target,
            headers=list(event.headers),
            http_version=event.http_version.decode("ascii"),
            content_length=content_length,
            has_body=has_body,
            upgrade=upgrade,
        )

    def _bad_request(self, error: h11.RemoteProtocolError) -> BadRequest:
        status = error.error_status_hint
        reason = _REASONS.get(status, "Bad request")
        body = _ERROR_BODY % reason.encode()
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (status, reason.encode(), len(body))
        )
        return BadRequest(status, str(error) or reason, head + body)

    # -- output ----------------------------------------------------------------

    @property
    def waiting_for_continue(self) -> bool:
        return self._h11.they_are_waiting_for_100_continue

    def send_continue(self) -> bytes:
        """``100 Continue``, or nothing if the client stopped waiting or sent the body already."""
        if not self._h11.they_are_waiting_for_100_continue:
            return b""
        return self._h11.send(h11.InformationalResponse(status_code=100, headers=[])) or b""

    def send_head(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """Serialize the status line and headers of the response."""
        headers = list(headers)
        if not self._body_done:
            # The handler answered without reading the whole body: close afterwards rather
            # than parse its unread remainder as the next request.
            headers.append((b"connection", b"close"))
        response = h11.Response(status_code=status, headers=headers, reason=_PHRASES.get(status, b""))
        return self._h11.send(response) or b""

    def send_body(self, data: bytes) -> bytes:
        """Frame a piece of the response body (nothing at all for HEAD)."""
        if self._head_request or not data:
            return b""
        return self._h11.send(h11.Data(data=data)) or b""

    def send_end(self) -> bytes:
        return self._h11.send(h11.EndOfMessage()) or b""

    def send_switch(self, headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
        """``101 Switching Protocols``; returns the bytes to write and those already read past it."""
        data = self._h11.send(h11.InformationalResponse(status_code=101, headers=list(headers))) or b""
        leftover, _closed = self._h11.trailing_data
        return data, bytes(leftover)

    # -- cycle -----------------------------------------------------------------

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request once this response is sent."""
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    def start_next_cycle(self) -> None:
        self._h11.start_next_cycle()
        self._head_request = False
        self._body_done = True
