"""A sans-I/O HTTP/1.1 server connection: bytes in, events out; responses in, bytes out.

h11 parses: request heads, bodies (Content-Length or chunked), 100-continue, pipelining
and protocol errors. Responses are serialized here, because h11's sending side (it
validates and normalizes every header twice and walks its state machine for each of
head, body and end) cost more than the rest of a cached GET. The rules it applied are kept,
one by one, and a test holds this serializer to h11's own output
(tests/http/test_response_framing.py):

* framing: a known length is sent as ``Content-Length``; an unknown one is chunked for
  HTTP/1.1 and close-delimited for HTTP/1.0; HEAD, 204 and 304 responses carry headers
  but never a body, and a declared length must be met exactly;
* keep-alive: the connection closes after the response (and says ``connection: close``)
  when the client asked for it, spoke HTTP/1.0, the handler said ``connection: close``,
  the body is close-delimited, or the request body was left unread (its remainder would
  otherwise be parsed as the next request);
* header values may not contain CR, LF or NUL (no response splitting).

Every request gets a fresh h11 parser that is handed the bytes already read past the
previous request, so h11 parses each cycle from a clean state while the response side
needs none of its bookkeeping.

This layer keeps h11's discipline: no sockets, no clocks, no tasks. The asyncio protocol
feeds it what the transport reads and writes what it returns, so every parsing and framing
rule can be tested by feeding bytes, one at a time or all at once. What it adds:

* one event vocabulary for the server (:class:`RequestHead`, :class:`BodyChunk`,
  :class:`EndOfRequest`, :class:`Closed`, :class:`BadRequest`) and the two sentinels
  :data:`NEED_DATA` and :data:`PAUSED` passed through from h11;
* protocol errors turned into a ready-to-send error response with h11's status hint
  (400, 431 for a header block over the limit, 501 for unknown transfer codings), instead
  of an exception;
* request framing and targets checked where h11 leaves them to the server: a request with
  both ``Transfer-Encoding`` and ``Content-Length`` is a 400 and the connection closes
  (RFC 9112 section 6.1; the bytes after it could be a smuggled request), and an
  absolute-form target (``http://host/path``) is turned into its path, its authority
  replacing ``Host`` (section 3.2.2); ``*`` passes for ``OPTIONS`` only, any other target is a 400;
* a request without a body is complete at its :class:`RequestHead` (no
  :class:`EndOfRequest` follows it), and ``100 Continue`` is sent only if the client still waits;
* the switch to another protocol (WebSocket) returns the bytes already read past the
  handshake.

Our side of the cycle is a :class:`State`, after h11's state table (the client's side is
h11's own ``their_state``)::

    state           event                                     next state
    IDLE            next_event() gives a RequestHead          SEND_RESPONSE
    SEND_RESPONSE   send_head()                               SEND_BODY
    SEND_RESPONSE   send_response()                           DONE or MUST_CLOSE
    SEND_BODY       send_end()                                DONE or MUST_CLOSE
    SEND_RESPONSE   send_switch()                             SWITCHED_PROTOCOL
    DONE            start_next_cycle()                        IDLE

A response ends in DONE when its head kept the connection alive and the request was read
to its end, else in MUST_CLOSE. A :class:`BadRequest` changes no state: the caller writes
its response and closes. How the body of the response is framed is a :class:`Framing`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

import h11

Headers = list[tuple[bytes, bytes]]
ResponseHeaders = Iterable[tuple[str, str]]
"""Response header names and values as handlers give them (``str``, sent as Latin-1)."""

NEED_DATA = h11.NEED_DATA
PAUSED = h11.PAUSED


@dataclass(slots=True)
class RequestHead:
    method: str
    target: bytes
    headers: Headers
    """Names lower-cased, in the order received."""
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

_STATUS_LINES = {status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n" for status in HTTPStatus}
_BODILESS_STATUSES = frozenset({204, 304})
_END = EndOfRequest()
_CLOSED = Closed()
_ERROR_BODY = b'{"error":"%s"}'
# An http(s) URI with a host (RFC 9110 section 4.2: no empty host, no userinfo).
_ABSOLUTE_FORM = re.compile(rb"(?i:https?)://([^/?#@]+)((?:[/?][^#]*)?)")
_REASONS = {400: "Bad request", 431: "Request header fields too large",
            501: "Transfer coding not implemented", 505: "HTTP version not supported"}



class State(enum.Enum):
    """Where our side of the current request/response cycle is (see the module docstring)."""

    IDLE = "IDLE"
    """No request head yet."""
    SEND_RESPONSE = "SEND_RESPONSE"
    """A request head came; nothing of its response was sent (a ``100 Continue`` may go)."""
    SEND_BODY = "SEND_BODY"
    """The response head was sent; its body follows."""
    DONE = "DONE"
    """The response is complete and the connection may carry another request."""
    MUST_CLOSE = "MUST_CLOSE"
    """The response is complete and the connection ends after it."""
    SWITCHED_PROTOCOL = "SWITCHED_PROTOCOL"
    """``101 Switching Protocols`` was sent: the bytes are another protocol's from now on."""


class Framing(enum.Enum):
    """How the body of the current response is delimited."""

    LENGTH = "LENGTH"
    """By ``Content-Length``."""
    CHUNKED = "CHUNKED"
    UNTIL_CLOSE = "UNTIL_CLOSE"
    """By the end of the connection (HTTP/1.0, length unknown)."""
    NONE = "NONE"
    """No body may follow (HEAD, 204, 304): body bytes given are dropped."""


# Module-level names for the members the send path compares on every body chunk: a
# global lookup costs a fraction of an attribute lookup on an Enum class.
_IDLE, _SEND_RESPONSE, _SEND_BODY, _DONE, _MUST_CLOSE = (
    State.IDLE, State.SEND_RESPONSE, State.SEND_BODY, State.DONE, State.MUST_CLOSE)
_BY_LENGTH, _CHUNKED, _UNTIL_CLOSE, _NO_BODY = Framing.LENGTH, Framing.CHUNKED, Framing.UNTIL_CLOSE, Framing.NONE


class HTTPConnection:
    """One server-side HTTP/1.1 connection's state, free of I/O."""

    def __init__(self, max_header_bytes: int = 16 * 1024) -> None:
        self._max_header_bytes = max_header_bytes
        self._h11 = self._parser()
        self._reset_cycle()

    def __repr__(self) -> str:
        return f"<HTTPConnection {self._state.name} (client {self._h11.their_state.__name__})>"

    @property
    def state(self) -> State:
        """Where our side of the current cycle is."""
        return self._state

    def _parser(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_header_bytes)

    def _reset_cycle(self) -> None:
        self._state = _IDLE
        # What the request head said (facts of this cycle, not phases of it):
        self._head_request = False
        self._client_keep_alive = True
        """False when the client said ``Connection: close`` or spoke HTTP/1.0."""
        self._http10 = False
        # What the response head decided:
        self._framing = _BY_LENGTH
        self._remaining = 0
        """Bytes of the declared Content-Length not sent yet."""
        self._keep_alive = True
        """Whether the response head left the connection open: its end is DONE, else MUST_CLOSE."""

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
        # Exact type tests, the most frequent first: cheaper than isinstance, and typed.
        if type(event) is h11.Data:
            return BodyChunk(bytes(event.data))
        if type(event) is h11.EndOfMessage:
            return _END
        if type(event) is h11.Request:
            return self._request_head(event)
        if type(event) is h11.ConnectionClosed:
            return _CLOSED
        return event  # type: ignore[return-value]  # NEED_DATA or PAUSED: h11 gives a server nothing else

    def _request_head(self, event: h11.Request) -> RequestHead | BadRequest:
        headers = [(name.lower(), value) for name, value in event.headers.raw_items()]
        content_length: int | None = 0
        declared_length = False
        upgrade: bytes | None = None
        chunked = False
        size = len(event.target)
        for name, value in headers:
            size += len(name) + len(value) + 4
            if name == b"content-length":
                content_length = int(value)
                declared_length = True
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"upgrade":
                upgrade = value.lower()
            elif name == b"connection" and b"close" in _tokens(value):
                self._client_keep_alive = False
        if size > self._max_header_bytes:
            # h11 bounds only an incomplete head; one that arrives whole in a single read
            # is parsed whatever its size, so the limit is enforced here as well.
            return self._bad_request(h11.RemoteProtocolError("header block too large", error_status_hint=431))
        if chunked and declared_length:
            # Framed one way here and perhaps the other way by a proxy in front: the bytes
            # after the chunked body could be a smuggled request. RFC 9112 section 6.1 lets
            # the server answer and MUST close; refusing it never runs the ambiguous body.
            return self._bad_request(h11.RemoteProtocolError("both Transfer-Encoding and Content-Length"))
        if chunked:
            content_length = None
        target = event.target
        if not target.startswith(b"/"):
            origin_form = self._other_form(event.method, target, headers)
            if origin_form is None:
                return self._bad_request(h11.RemoteProtocolError("invalid request target"))
            target = origin_form
        self._http10 = event.http_version < b"1.1"
        if self._http10:
            self._client_keep_alive = False
        self._head_request = event.method == b"HEAD"
        has_body = content_length != 0
        if not has_body:
            # h11 reports the empty body's end as an event of its own; a request without a
            # body is complete at its head, so it is consumed here rather than by every caller.
            end = self._h11.next_event()
            assert type(end) is h11.EndOfMessage, end
        self._state = _SEND_RESPONSE
        return RequestHead(
            method=event.method.decode("ascii"),
            target=target,
            headers=headers,
            http_version=event.http_version.decode("ascii"),
            content_length=content_length,
            has_body=has_body,
            upgrade=upgrade,
        )

    @staticmethod
    def _other_form(method: bytes, target: bytes, headers: Headers) -> bytes | None:
        """The origin-form of an absolute-form or asterisk-form target, None for any other.

        An absolute-form target (``http://host:port/path?query``, RFC 9112 section 3.2.2)
        is its path and query, and its authority replaces ``Host`` (section 7.2), so routing
        and the same-origin check see one request whichever form the client used. ``*``
        (section 3.2.4) is kept as it is for ``OPTIONS``: the router answers it.
        """
        if target == b"*":
            return target if method == b"OPTIONS" else None
        match = _ABSOLUTE_FORM.fullmatch(target)
        if match is None:
            return None
        authority, rest = match.groups()
        headers[:] = [(name, value) for name, value in headers if name != b"host"]
        headers.append((b"host", authority))
        return rest if rest.startswith(b"/") else b"/" + rest

    def _bad_request(self, error: h11.RemoteProtocolError) -> BadRequest:
        status = error.error_status_hint
        reason = _REASONS.get(status, "Bad request")
        body = _ERROR_BODY % reason.encode()
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"cache-control: no-store\r\nconnection: close\r\n\r\n" % (status, reason.encode(), len(body))
        )
        return BadRequest(status, str(error) or reason, head + body)

    # -- output ----------------------------------------------------------------

    @property
    def waiting_for_continue(self) -> bool:
        return self._state is _SEND_RESPONSE and self._h11.they_are_waiting_for_100_continue

    def send_continue(self) -> bytes:
        """``100 Continue``, or nothing if the client stopped waiting or sent the body already."""
        if not self.waiting_for_continue:
            return b""
        return self._h11.send(h11.InformationalResponse(status_code=100, headers=[])) or b""

    def send_response(self, status: int, headers: ResponseHeaders, body: bytes) -> bytes:
        """A whole response, framed by its length: head and body (the body only if one may follow)."""
        head = self.send_head(status, headers, len(body))
        self._state = _DONE if self._keep_alive else _MUST_CLOSE
        return head if self._framing is _NO_BODY or not body else head + body

    def send_head(self, status: int, headers: ResponseHeaders, content_length: int | None) -> bytes:
        """The status line and headers; the body that follows is framed by ``content_length``
        when it is known, chunked (HTTP/1.1) or delimited by the close (HTTP/1.0) when not."""
        if self._state is not _SEND_RESPONSE:
            raise h11.LocalProtocolError("there is no request to answer, or it was answered already")
        if not 200 <= status <= 999:
            raise h11.LocalProtocolError(f"status {status} is not a final response")
        # h11 says DONE once the request was read to its end: a body left unread would be
        # parsed as the next request, so the connection must close.
        close = not (self._client_keep_alive and self._h11.their_state is h11.DONE)
        lines = [_STATUS_LINES.get(status) or f"HTTP/1.1 {status} \r\n"]
        connection: list[str] = []
        for name, value in headers:
            if name.lower() == "connection":
                connection.append(value)
            else:
                lines.append(f"{name}: {value}\r\n")
        bodiless_status = status in _BODILESS_STATUSES
        if content_length is not None:
            lines.append(f"content-length: {content_length}\r\n")
            self._framing, self._remaining = _BY_LENGTH, content_length
        elif bodiless_status:
            self._framing = _NO_BODY
        elif self._http10:
            self._framing = _UNTIL_CLOSE
            close = True
        else:
            lines.append("transfer-encoding: chunked\r\n")
            self._framing = _CHUNKED
        if self._head_request or bodiless_status:
            self._framing = _NO_BODY
        if connection:
            tokens = {token for value in connection for token in _tokens(value.encode("latin-1"))}
            if b"close" in tokens:
                close = True
            elif close:
                kept = sorted(token.decode("latin-1") for token in tokens - {b"keep-alive"})
                connection = [", ".join([*kept, "close"])]
        elif close:
            connection = ["close"]
        lines.extend([f"connection: {value}\r\n" for value in connection])
        lines.append("\r\n")
        text = "".join(lines)
        # Each line ends in the one CRLF put there above: a CR, LF or NUL inside a name or value
        # would let whoever chose it write headers (or a whole response) of their own.
        if text.count("\n") != len(lines) or text.count("\r") != len(lines) or "\0" in text:
            raise h11.LocalProtocolError("a response header contains CR, LF or NUL")
        self._keep_alive = not close
        self._state = _SEND_BODY
        return text.encode("latin-1")

    def send_body(self, data: bytes) -> bytes:
        """Frame a piece of the response body (nothing at all where no body may follow)."""
        if self._state is not _SEND_BODY:
            raise h11.LocalProtocolError("no response body is being sent")
        framing = self._framing
        if framing is _NO_BODY or not data:
            return b""
        if framing is _BY_LENGTH:
            self._remaining -= len(data)
            if self._remaining < 0:
                raise h11.LocalProtocolError("Too much data for declared Content-Length")
            return data
        if framing is _CHUNKED:
            return b"%x\r\n%s\r\n" % (len(data), data)
        return data

    def send_end(self) -> bytes:
        if self._state is not _SEND_BODY:
            raise h11.LocalProtocolError("no response body is being sent")
        if self._framing is _BY_LENGTH and self._remaining:
            raise h11.LocalProtocolError("Too little data for declared Content-Length")
        self._state = _DONE if self._keep_alive else _MUST_CLOSE
        return b"0\r\n\r\n" if self._framing is _CHUNKED else b""

    def send_switch(self, headers: ResponseHeaders) -> tuple[bytes, bytes]:
        """``101 Switching Protocols``; returns the bytes to write and those already read past it."""
        encoded = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        data = self._h11.send(h11.InformationalResponse(status_code=101, headers=encoded)) or b""
        self._state = State.SWITCHED_PROTOCOL
        leftover, _closed = self._h11.trailing_data
        return data, leftover

    # -- cycle -----------------------------------------------------------------

    @property
    def client_may_still_send(self) -> bool:
        """Whether the client may still be sending the current request (its body left unread,
        or a malformed one): closing with such input unread makes the kernel reset the
        connection, which can destroy the response on its way."""
        return self._h11.their_state in (h11.SEND_BODY, h11.ERROR)

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request once this response is sent."""
        return self._state is _DONE and self._h11.their_state is h11.DONE

    def start_next_cycle(self) -> None:
        """Get ready for the next request: a new parser, given what was read past this one."""
        if not self.keep_alive:
            raise h11.LocalProtocolError("the connection cannot carry another request")
        leftover, closed = self._h11.trailing_data
        self._h11 = self._parser()
        if leftover:
            self._h11.receive_data(leftover)
        if closed:
            self._h11.receive_data(b"")
        self._reset_cycle()


def _tokens(value: bytes) -> set[bytes]:
    """The lower-cased tokens of a comma-separated header value (``Connection``)."""
    return {token.strip() for token in value.lower().split(b",")} - {b""}
