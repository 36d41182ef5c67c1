"""The asyncio binding of :class:`HTTPConnection`: a transport in, a handler out.

One long-lived task per connection walks the request cycle: wait for a request head,
call the handler, write its response, start the next cycle. The protocol adds the parts
that need a clock or a socket:

* a deadline for a request's line and headers (slowloris), an idle keep-alive timeout,
  and a limit on how long a request body may stall between two reads. One timer per
  connection serves them all and is moved lazily: a request only writes its new deadline,
  and the timer, when it fires early, re-arms itself for the deadline now due, so a busy
  keep-alive connection schedules about one timer per keep-alive period instead of four
  per request;
* its place in the server's count of open connections: while it holds no request (fresh,
  idle, or sending a request head) the server may shed it to admit another;
* read backpressure: reading pauses while a request is being handled and resumes only
  when the handler asks for body bytes or the next request is due, so pipelined requests
  are answered in order and never pile up in memory;
* write backpressure: ``pause_writing``/``resume_writing`` gate streamed bodies, so a
  slow reader never makes the server buffer a whole file;
* graceful close: :meth:`shutdown` lets an in-flight request finish, then closes;
* lingering close: after a response that left the request unread (a 413, a 400) the
  socket is half-closed and what the client still sends is dropped until its end of
  stream or ``LINGER`` seconds, so its unread bytes do not make the kernel reset the
  connection and destroy the answer (RFC 9112 section 9.6).

Where a connection is is a :class:`Phase` (the request/response framing inside a cycle is
:class:`~server.http.connection.HTTPConnection`'s own :class:`~server.http.connection.State`)::

    phase                event                                             next phase
    IDLE                 first byte of a request                           RECEIVING_HEAD
    IDLE                 request head complete (pipelined, read already)   IN_REQUEST
    RECEIVING_HEAD       request head complete                             IN_REQUEST
    IDLE/RECEIVING_HEAD  timeout, shutdown(), shed(), end of stream        CLOSED
    IDLE/RECEIVING_HEAD  malformed request answered (4xx/5xx)              LINGERING
    IN_REQUEST           response sent, connection kept alive              IDLE
    IN_REQUEST           response sent, request left unread                LINGERING
    IN_REQUEST           response sent, not kept alive (or shutdown())     CLOSING
    IN_REQUEST           101 sent for an ``Upgrade`` response              SWITCHED
    IN_REQUEST           body stalled: transport aborted                   (CLOSED once lost)
    LINGERING            client's end of stream, ``LINGER`` over, shed()   (CLOSED once lost)
    CLOSING              the transport flushed its buffer and is lost      CLOSED
    any but SWITCHED     connection_lost()                                 CLOSED

CLOSING is a closed connection whose response may still be in the transport's buffer:
like IN_REQUEST it counts as busy, so a graceful shutdown waits for it rather than
aborting it and truncating the response. Nothing is read or written in CLOSED, and no
request starts once the phase has left IDLE and RECEIVING_HEAD: a head that arrived
just before a shed or a timeout is never handled on a connection nobody can be answered on.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Protocol

from core.config import Settings
from server.http.connection import (
    NEED_DATA,
    PAUSED,
    BadRequest,
    BodyChunk,
    Closed,
    EndOfRequest,
    Event,
    HTTPConnection,
    RequestHead,
)
from server.http.request import Request
from server.http.response import AnyResponse, Response, StreamingResponse, Upgrade

log = logging.getLogger("nve.http")

Handler = Callable[[Request], Awaitable[AnyResponse]]

_request_ids = itertools.count(1)
_date_cache: tuple[int, str] = (0, "")
_ID_PREFIX = os.urandom(3).hex()


def next_request_id() -> str:
    return f"{_ID_PREFIX}-{next(_request_ids):x}"


def http_date() -> str:
    """The ``Date`` header value, formatted once per second rather than per response."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


LINGER = 2.0
"""Seconds a half-closed connection drops a client's remaining input before it is cut."""


class Phase(enum.Enum):
    """Where a connection is; the transitions are in the module docstring."""

    # Members are singletons compared by identity, so an identity hash is consistent; Enum's
    # own hashes the name in Python, which the transition check would pay three times a request.
    __hash__ = object.__hash__

    IDLE = "IDLE"
    """No request: a fresh connection, or one between two keep-alive requests."""
    RECEIVING_HEAD = "RECEIVING_HEAD"
    """Bytes of a request head came; the head must be complete within ``header_timeout``."""
    IN_REQUEST = "IN_REQUEST"
    """A request is in flight: its handler runs, its body is read or its response written."""
    LINGERING = "LINGERING"
    """Answered and half-closed; the client's input is dropped until its end of stream."""
    CLOSING = "CLOSING"
    """Closed after a response the transport may still be flushing."""
    SWITCHED = "SWITCHED"
    """The transport belongs to another protocol (WebSocket) now."""
    CLOSED = "CLOSED"
    """Lost, or closed by this side with nothing left to deliver."""


# The transition table, checked on every change of phase while assertions are on (the
# tests); module-level names for the members the per-read paths compare.
_IDLE, _RECEIVING_HEAD, _IN_REQUEST = Phase.IDLE, Phase.RECEIVING_HEAD, Phase.IN_REQUEST
_LINGERING, _CLOSING, _SWITCHED, _CLOSED = Phase.LINGERING, Phase.CLOSING, Phase.SWITCHED, Phase.CLOSED
_NEXT: dict[Phase, frozenset[Phase]] = {
    _IDLE: frozenset({_RECEIVING_HEAD, _IN_REQUEST, _LINGERING, _CLOSED}),
    _RECEIVING_HEAD: frozenset({_IN_REQUEST, _LINGERING, _CLOSED}),
    _IN_REQUEST: frozenset({_IDLE, _LINGERING, _CLOSING, _SWITCHED, _CLOSED}),
    _LINGERING: frozenset({_CLOSED}),
    _CLOSING: frozenset({_CLOSED}),
    _SWITCHED: frozenset(),
    _CLOSED: frozenset(),
}


class ConnectionManager(Protocol):
    """What a connection needs of the server that accepted it (:class:`server.http.server.HTTPServer`).

    Declared here so that this module does not import the server's: the server creates
    protocols, protocols only report to it.
    """

    @property
    def settings(self) -> Settings: ...

    @property
    def handler(self) -> Handler: ...

    def admit(self, connection: HTTPProtocol) -> bool:
        """Register a new connection; False: refuse it."""

    def request_started(self, connection: HTTPProtocol) -> None:
        """``connection`` has a request in flight: it may not be shed."""

    def request_finished(self, connection: HTTPProtocol) -> None:
        """``connection`` holds no request any more: it may be shed."""

    def discard(self, connection: HTTPProtocol) -> None:
        """``connection`` is gone, or belongs to another protocol."""


class HTTPProtocol(asyncio.Protocol):
    """One connection's request cycle; see the module docstring."""

    def __init__(self, server: ConnectionManager) -> None:
        self._server = server
        self._settings = server.settings
        self._loop = asyncio.get_running_loop()
        self._conn = HTTPConnection(max_header_bytes=server.settings.max_header_bytes)
        self._phase = _IDLE
        self._transport: asyncio.Transport | None = None
        self._client: tuple[str, int] | None = None
        self._data_waiter: asyncio.Future[None] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        # Flow control, orthogonal to the phase: either side of the socket may be paused in
        # any phase that reads or writes, and resuming does not move the phase.
        self._writing_paused = False
        self._reading_paused = False
        self._close_after_response = False
        """Set by shutdown() during a request: an order for the end of IN_REQUEST (CLOSING
        instead of IDLE), not a phase of its own; the request runs on as any other."""
        self._deadline: float | None = None
        """Loop time at which the current wait (head, body, keep-alive) times out; None: none."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._linger_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        paused = "".join([" reading-paused" if self._reading_paused else "",
                          " writing-paused" if self._writing_paused else ""])
        return f"<HTTPProtocol {self._phase.name} ({self._conn.state.name}){paused} client={self._client}>"

    @property
    def phase(self) -> Phase:
        return self._phase

    def _enter(self, phase: Phase) -> None:
        assert phase in _NEXT[self._phase], f"{self!r} cannot go to {phase.name}"
        self._phase = phase

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self._client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        if not self._server.admit(self):
            self.abort()
            return
        self._set_deadline(self._settings.header_timeout)
        self._task = self._loop.create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase is _LINGERING:
            return  # the rest of a request that was answered already
        self._conn.receive_data(data)
        if phase is _IDLE:
            # The first byte of a request: from now on its head has a deadline.
            self._enter(_RECEIVING_HEAD)
            self._set_deadline(self._settings.header_timeout)
        elif phase is _IN_REQUEST and not self._reading_paused:
            # The handler is busy; don't read (and buffer) the next pipelined request.
            self._transport.pause_reading()  # type: ignore[union-attr]  # set by connection_made
            self._reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        if self._phase is _LINGERING:
            self._transport.close()  # type: ignore[union-attr]  # set by connection_made
            return True
        self._conn.receive_data(b"")
        self._wake_reader()
        return True  # keep the write side open to finish the response

    def connection_lost(self, exc: Exception | None) -> None:
        if self._phase is not _CLOSED:
            self._enter(_CLOSED)
        self._stop_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        self._wake_reader()
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)
        self._server.discard(self)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)

    # -- lifecycle ---------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a response is on its way: being made, or still in a closing transport's buffer."""
        return self._phase is _IN_REQUEST or self._phase is _CLOSING

    def shutdown(self) -> None:
        """Close now if idle; otherwise after the current response."""
        self._close_after_response = True
        if self._phase is not _IN_REQUEST:
            self._close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def shed(self) -> None:
        """Close this connection, which holds no request, to make room for a new one."""
        log.debug("closing %s: shed at the connection cap", self._client)
        if self._phase is _LINGERING:
            self.abort()  # its answer went out already; what it still sends is not wanted
            return
        # CLOSED from now on, though the transport reports it later: a request head that
        # arrived just before must not start a request nobody can be answered on.
        self._close(linger=False)
        self._wake_reader()

    def _close(self, linger: bool = True) -> None:
        """Leave the phase for good: LINGERING if the client may still be sending (unless
        ``linger`` is False: a shed connection's room is wanted now), else CLOSING after a
        request, CLOSED before one. A no-op once the connection is leaving."""
        self._stop_timer()
        transport = self._transport
        phase = self._phase
        if transport is None or not (phase is _IDLE or phase is _RECEIVING_HEAD or phase is _IN_REQUEST):
            return
        if linger and self._conn.client_may_still_send and transport.can_write_eof():
            transport.write_eof()
            # Nothing in flight any more: shutdown does not wait for it, the cap may shed it.
            self._enter(_LINGERING)
            self._server.request_finished(self)
            if self._reading_paused:
                transport.resume_reading()
                self._reading_paused = False
            self._linger_timer = self._loop.call_later(LINGER, transport.abort)
        else:
            self._enter(_CLOSING if phase is _IN_REQUEST else _CLOSED)
            transport.close()

    # -- timers ------------------------------------------------------------------

    def _set_deadline(self, seconds: float) -> None:
        deadline = self._loop.time() + seconds
        self._deadline = deadline
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _clear_deadline(self) -> None:
        # The timer stays armed: when it fires it finds nothing due, which costs less
        # than cancelling and scheduling it again around every request.
        self._deadline = None

    def _stop_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:
            # The deadline moved on since this timer was set.
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
            return
        self._deadline = None
        self._on_timeout()

    def _on_timeout(self) -> None:
        if self._phase is _IN_REQUEST:
            log.info("closing %s: request body stalled", self._client)
            self.abort()
            return
        if self._phase is _RECEIVING_HEAD:
            log.info("closing %s: request head not complete in time", self._client)
        self._close()

    # -- reading -----------------------------------------------------------------

    def _wake_reader(self) -> None:
        waiter = self._data_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _next_event(self) -> Event:
        while True:
            event = self._conn.next_event()
            if event is not NEED_DATA:
                return event
            phase = self._phase
            if phase is _CLOSED or phase is _LINGERING:
                return Closed()
            if self._reading_paused:
                self._transport.resume_reading()  # type: ignore[union-attr]  # set by connection_made
                self._reading_paused = False
            self._data_waiter = self._loop.create_future()
            try:
                await self._data_waiter
            finally:
                self._data_waiter = None

    async def _read_body(self) -> bytes | None:
        """The handler's body reader: the next chunk, or None at the end."""
        if self._conn.waiting_for_continue:
            self._write(self._conn.send_continue())
        # A client that stops sending mid-body would otherwise hold its handler forever.
        self._set_deadline(self._settings.body_timeout)
        try:
            event = await self._next_event()
        finally:
            self._clear_deadline()
        if isinstance(event, BodyChunk):
            return event.data
        if isinstance(event, EndOfRequest):
            return None
        if isinstance(event, BadRequest):
            raise ConnectionError(f"malformed request body: {event.reason}")
        raise ConnectionError("client went away during the request body")

    # -- the request cycle ---------------------------------------------------------

    async def _serve(self) -> None:
        try:
            while True:
                event = await self._next_event()
                if not (self._phase is _IDLE or self._phase is _RECEIVING_HEAD):
                    break  # closed meanwhile: no answer could reach the client, start nothing for it
                if isinstance(event, RequestHead):
                    keep_going = await self._handle(event)
                    if not keep_going:
                        break
                    continue
                if event is PAUSED:
                    # A pipelined request arrived before we finished the last one; cannot
                    # happen once _handle() has started the next cycle, so it means stop.
                    break
                if isinstance(event, BadRequest):
                    self._write(event.response)
                break  # Closed, BadRequest
        except Exception:  # a bug in this layer must cost one connection, not the server
            log.exception("connection %s failed", self._client)
        finally:
            self._close()

    async def _handle(self, head: RequestHead) -> bool:
        """Run one request to completion; return whether the connection may go on."""
        self._enter(_IN_REQUEST)
        self._clear_deadline()
        self._server.request_started(self)
        request = Request(
            method=head.method, target=head.target, headers=head.headers, client=self._client,
            request_id=next_request_id(), content_length=head.content_length,
            reader=self._read_body if head.has_body else _no_body,
        )
        response = await self._server.handler(request)
        if self._phase is _CLOSED:
            return False
        if isinstance(response, Upgrade) and head.upgrade is not None:
            self._switch(response)
            return False
        # An Upgrade answers only a request that asked to upgrade (the handshake check refuses others).
        await self._write_response(request, response)  # type: ignore[arg-type]  # so no Upgrade gets here
        if self._phase is _CLOSED or not self._conn.keep_alive or self._close_after_response:
            return False
        self._conn.start_next_cycle()
        self._enter(_IDLE)
        self._server.request_finished(self)
        self._set_deadline(self._settings.keepalive_timeout)
        return True

    def _switch(self, upgrade: Upgrade) -> None:
        data, leftover = self._conn.send_switch(upgrade.headers)
        self._write(data)
        self._stop_timer()
        self._enter(_SWITCHED)
        self._server.discard(self)
        transport = self._transport
        assert transport is not None
        protocol = upgrade.on_switch(transport, leftover)
        transport.set_protocol(protocol)
        if self._reading_paused:
            transport.resume_reading()

    async def _write_response(self, request: Request, response: Response | StreamingResponse) -> None:
        headers = [*response.headers, ("x-request-id", request.request_id), ("date", http_date())]
        if isinstance(response, Response):
            self._write(self._conn.send_response(response.status, headers, response.body))
            return
        self._write(self._conn.send_head(response.status, headers, response.content_length))
        if request.method != "HEAD":
            try:
                async for chunk in response.chunks:
                    if self._phase is _CLOSED:
                        return
                    self._write(self._conn.send_body(chunk))
                    if self._writing_paused:
                        await self._drain()
            except Exception:
                # The head is out: the only honest way to report a broken body is to cut
                # the connection, so the client sees a short read instead of a silent truncation.
                log.exception("streaming the response to %s %s failed", request.method, request.path)
                self.abort()
                return
        if self._phase is not _CLOSED:
            self._write(self._conn.send_end())

    async def _drain(self) -> None:
        self._write_waiter = self._loop.create_future()
        try:
            await self._write_waiter
        finally:
            self._write_waiter = None

    def _write(self, data: bytes) -> None:
        if data and self._phase is not _CLOSED:
            self._transport.write(data)  # type: ignore[union-attr]  # set by connection_made


async def _no_body() -> bytes | None:
    return None

