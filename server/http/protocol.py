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
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import TYPE_CHECKING

from server.http.connection import (NEED_DATA, PAUSED, BadRequest, BodyChunk, Closed, EndOfRequest,
                                    HTTPConnection, RequestHead)
from server.http.request import Request
from server.http.response import AnyResponse, Response, StreamingResponse, Upgrade

if TYPE_CHECKING:
    from server.http.server import HTTPServer

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


class HTTPProtocol(asyncio.Protocol):
    def __init__(self, server: HTTPServer) -> None:
        self._server = server
        self._settings = server.settings
        self._loop = asyncio.get_running_loop()
        self._conn = HTTPConnection(max_header_bytes=server.settings.max_header_bytes)
        self._transport: asyncio.Transport | None = None
        self._client: tuple[str, int] | None = None
        self._data_waiter: asyncio.Future[None] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._reading_paused = False
        self._lost = False
        self._closing = False
        self._in_request = False
        self._got_bytes = False
        self._deadline = 0.0
        """Loop time at which the current wait (head, body, keep-alive) times out; 0: none."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._switched = False
        self._lingering: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self._client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        if not self._server.admit(self):
            transport.abort()
            return
        self._set_deadline(self._settings.header_timeout)
        self._task = self._loop.create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            return  # the rest of a request that was answered already
        self._conn.receive_data(data)
        if not self._got_bytes:
            self._got_bytes = True
            if not self._in_request:
                # The first byte of a request: from now on its head has a deadline.
                self._set_deadline(self._settings.header_timeout)
        if self._in_request and not self._reading_paused:
            # The handler is busy; don't read (and buffer) the next pipelined request.
            self._transport.pause_reading()  # type: ignore[union-attr]
            self._reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        if self._lingering is not None:
            self._transport.close()  # type: ignore[union-attr]
            return True
        self._conn.receive_data(b"")
        self._wake_reader()
        return True  # keep the write side open to finish the response

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._stop_timer()
        if self._lingering is not None:
            self._lingering.cancel()
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
        return self._in_request

    def shutdown(self) -> None:
        """Close now if idle; otherwise after the current response."""
        self._closing = True
        if not self._in_request:
            self._close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def shed(self) -> None:
        """Close this connection, which holds no request, to make room for a new one."""
        log.debug("closing %s: shed at the connection cap", self._client)
        if self._lingering is not None:
            self.abort()  # its answer went out already; what it still sends is not wanted
            return
        # Gone from now on, though the transport reports it later: a request head that
        # arrived just before must not start a request nobody can be answered on.
        self._lost = True
        self._close()
        self._wake_reader()

    def _close(self) -> None:
        self._stop_timer()
        transport = self._transport
        if transport is None or self._switched or self._lingering is not None:
            return
        if not self._lost and self._conn.client_may_still_send and transport.can_write_eof():
            transport.write_eof()
            # Nothing in flight any more: shutdown does not wait for it, the cap may shed it.
            self._in_request = False
            self._server.request_finished(self)
            if self._reading_paused:
                transport.resume_reading()
                self._reading_paused = False
            self._lingering = self._loop.call_later(LINGER, transport.abort)
        else:
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
        self._deadline = 0.0

    def _stop_timer(self) -> None:
        self._deadline = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if not self._deadline:
            return
        if self._loop.time() < self._deadline:
            # The deadline moved on since this timer was set.
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
            self._timer_at = self._deadline
            return
        self._deadline = 0.0
        self._on_timeout()

    def _on_timeout(self) -> None:
        if self._in_request:
            log.info("closing %s: request body stalled", self._client)
            self.abort()
            return
        if self._got_bytes:
            log.info("closing %s: request head not complete in time", self._client)
        self._close()

    # -- reading -----------------------------------------------------------------

    def _wake_reader(self) -> None:
        waiter = self._data_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _next_event(self):  # type: ignore[no-untyped-def]
        while True:
            event = self._conn.next_event()
            if event is not NEED_DATA:
                return event
            if self._lost:
                return Closed()
            if self._reading_paused:
                self._transport.resume_reading()  # type: ignore[union-attr]
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
            while not self._lost:
                event = await self._next_event()
                if self._lost:
                    break  # no answer could reach the client: start nothing for it
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
        self._in_request = True
        self._clear_deadline()
        self._server.request_started(self)
        request = Request(
            method=head.method, target=head.target, headers=head.headers, client=self._client,
            request_id=next_request_id(), content_length=head.content_length,
            reader=self._read_body if head.has_body else _no_body,
        )
        response = await self._server.handler(request)
        if self._lost:
            return False
        if isinstance(response, Upgrade) and head.upgrade is not None:
            self._switch(response)
            return False
        await self._write_response(request, response)  # type: ignore[arg-type]
        if self._lost or not self._conn.keep_alive or self._closing:
            return False
        self._conn.start_next_cycle()
        self._in_request = False
        self._got_bytes = False
        self._server.request_finished(self)
        self._set_deadline(self._settings.keepalive_timeout)
        return True

    def _switch(self, upgrade: Upgrade) -> None:
        data, leftover = self._conn.send_switch(upgrade.headers)
        self._write(data)
        self._stop_timer()
        self._switched = True
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
                    if self._lost:
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
        if not self._lost:
            self._write(self._conn.send_end())

    async def _drain(self) -> None:
        self._write_waiter = self._loop.create_future()
        try:
            await self._write_waiter
        finally:
            self._write_waiter = None

    def _write(self, data: bytes) -> None:
        if data and not self._lost:
            self._transport.write(data)  # type: ignore[union-attr]


async def _no_body() -> bytes | None:
    return None

