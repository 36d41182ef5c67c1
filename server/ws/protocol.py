"""The asyncio protocol that owns a socket once the HTTP layer has switched it to WebSocket.

It is thin: bytes go through :class:`WsConnection`, client messages are answered here
(ping -> pong, subscribe/unsubscribe -> the hub, anything else -> an ``error`` message),
and outgoing frames are written under a per-client byte budget:

- frames sent during one turn of the event loop are written together, in one system
  call, when the hub flushes (see hub.py), and the job messages of a client that
  follows every operation come joined from its broadcast group (broadcast.py): on a
  busy server the socket writes, not the Python, are the cost of a fan-out;
- the transport's high-water mark is ``client_budget_bytes``; while the transport has
  paused us, frames wait in a :class:`Backlog` where a newer progress of an operation
  replaces the older one (latest wins) and every other message (complete, error, pong,
  heartbeat) is kept;
- once the socket buffer plus the backlog pass ``client_hard_cap_bytes`` the client is
  closed with 1013 (Try Again Later: reconnect, resubscribe, and the latest state of
  each followed operation comes at once, so nothing final is lost);
- a complete/error is written at most once per connection and operation: the hub's
  monotonic filter stops a second one on the live path, and the replay on subscribe
  skips a final the client already had (see Hub.subscribe); the client remembers only
  the finals of operations it subscribed to, so a broadcast client's state stays the
  same size however many jobs it sees.

Liveness: any frame from the client counts as an answer. The hub's heartbeat calls
:meth:`WsProtocol.heartbeat` every interval; a client silent since the previous one is
closed with 1011.

Closing. Messages that came before a close (the peer's, or a bad frame) in the same read
are answered first. After the close frame the socket is half-closed and what the peer
still sends is read and dropped until its end of stream, so the kernel never answers
unread input with a reset that would destroy the close frame. A socket whose close has
not completed ``close_linger`` seconds after it began (the peer reads nothing, or never
ends its stream) is aborted.

A client is in one :class:`State` (as in websockets' table, without CONNECTING: the HTTP
layer did the handshake before this protocol exists)::

    state    event                                                   next state
    OPEN     close(): shutdown 1001, ping timeout 1011, slow 1013    CLOSING
    OPEN     the peer's close frame, a bad frame, its end of stream  CLOSING
    OPEN     abort()                                                 CLOSING
    CLOSING  the peer's end of stream, or close_linger over: abort   (CLOSED once lost)
    any      connection_lost()                                       CLOSED

CLOSING writes nothing more (the close frame was the last) and drops what it reads;
CLOSED has no socket. The frames of the WebSocket protocol itself (wsproto's own
OPEN/LOCAL_CLOSING/REMOTE_CLOSING/CLOSED) are :class:`WsConnection`'s business.

Imports point one way: the hub imports this module, and this module reaches the hub
only through :class:`ClientHost`, the part of it a client uses.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Coroutine
from typing import Any, Protocol

import msgspec

from server.ws import messages
from server.ws.backlog import Backlog
from server.ws.connection import BinaryReceived, PingReceived, TextReceived, WsConnection, text_frame
from server.ws.instruments import CLIENT_ERRORS, COALESCED, EVICTED
from server.ws.settings import WsSettings

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_PING_TIMEOUT = 1011
CLOSE_SLOW_CONSUMER = 1013
MAX_IDS_PER_MESSAGE = 1000
MAX_SUBSCRIPTIONS = 10_000
MAX_OPERATION_ID = 256
FINALS_REMEMBERED = 4096


class State(enum.Enum):
    """Where a client's connection is; the transitions are in the module docstring."""

    OPEN = "OPEN"
    """Messages flow both ways."""
    CLOSING = "CLOSING"
    """Our close frame is out (or the socket aborted): nothing more is written, input is dropped."""
    CLOSED = "CLOSED"
    """The socket is gone."""


# Module-level names for the members the per-message paths compare (a global lookup costs
# a fraction of an attribute lookup on an Enum class), and the transition table that
# _enter() checks while assertions are on (the tests).
_OPEN, _CLOSING, _CLOSED = State.OPEN, State.CLOSING, State.CLOSED
_NEXT: dict[State, frozenset[State]] = {
    _OPEN: frozenset({_CLOSING, _CLOSED}),
    _CLOSING: frozenset({_CLOSED}),
    _CLOSED: frozenset(),
}


class ClientHost(Protocol):
    """What a client needs of the hub that holds it (:class:`server.ws.hub.Hub`)."""

    @property
    def settings(self) -> WsSettings: ...

    def register(self, client: WsProtocol) -> None:
        """``client`` is connected."""

    def unregister(self, client: WsProtocol) -> None:
        """``client``'s socket is gone."""

    def mark_dirty(self, client: WsProtocol) -> None:
        """``client`` has frames waiting: call its :meth:`WsProtocol.flush` soon."""

    def subscribe(self, client: WsProtocol, operation_ids: list[str]) -> None: ...

    def unsubscribe(self, client: WsProtocol, operation_ids: list[str]) -> None: ...

    def authenticate(self, client: WsProtocol, token: str) -> Coroutine[Any, Any, None]:
        """Make ``client`` its token's owner's (the coroutine is run with :meth:`spawn`)."""

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` as a task the hub keeps."""


class WsProtocol(asyncio.Protocol):
    """One WebSocket client of a hub; see the module docstring."""

    __slots__ = ("_hub", "client_id", "_ws", "_transport", "_paused", "_backlog", "_finished",
                 "subscriptions", "_alive", "_state", "_budget", "_hard_cap", "_linger", "_out",
                 "_dirty", "owner", "everything_since")

    def __init__(self, hub: ClientHost, owner: str | None = None) -> None:
        settings = hub.settings
        self._hub = hub
        self.client_id = str(uuid.uuid4())
        self.owner = owner
        """Whose operations this client receives; None until it authenticates (``auth`` message)."""
        self._ws = WsConnection(settings.max_message_bytes, settings.max_fragments)
        self._transport: asyncio.Transport | None = None
        self._state = _OPEN
        # Flow control, orthogonal to the state: the transport pauses and resumes us while OPEN.
        self._paused = False
        self._out: list[bytes] = []  # frames for the next flush; empty while paused
        # Bookkeeping, not a phase: whether the hub has this client in its flush queue.
        self._dirty = False
        self._backlog: Backlog[bytes] = Backlog()
        # Finals sent of subscribed operations: an insertion-ordered set, oldest forgotten first.
        self._finished: dict[str, None] = {}
        self.everything_since: float | None = None
        """Monotonic time since which the client receives all its owner's operations (None: narrowed)."""
        self.subscriptions: set[str] = set()
        """Operations this client narrowed itself to; empty means it receives every operation."""
        self._alive = True
        """Liveness, orthogonal to the state: whether the client sent anything since the last heartbeat."""
        self._budget = settings.client_budget_bytes
        self._hard_cap = settings.client_hard_cap_bytes
        self._linger: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        paused = " writing-paused" if self._paused else ""
        return f"<WsProtocol {self._state.name} ({self._ws!r}){paused} id={self.client_id} owner={self.owner}>"

    @property
    def state(self) -> State:
        return self._state

    @property
    def closed(self) -> bool:
        """Whether the socket is gone."""
        return self._state is _CLOSED

    def _enter(self, state: State) -> None:
        assert state in _NEXT[self._state], f"{self!r} cannot go to {state.name}"
        self._state = state

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        self._transport.set_write_buffer_limits(high=self._budget)  # type: ignore[union-attr]  # set just above
        self._hub.register(self)
        self.send_frame(text_frame(messages.welcome(self.client_id)))

    def data_received(self, data: bytes) -> None:
        self._alive = True
        self._feed(data)

    def eof_received(self) -> bool | None:
        self._feed(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        if self._state is not _CLOSED:
            self._enter(_CLOSED)
        self._out.clear()
        self._backlog.take_all()
        self._hub.unregister(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if len(self._backlog) and self._state is _OPEN:
            assert self._transport is not None
            self._transport.writelines([frame for _, frame, _ in self._backlog.take_all()])

    # -- outgoing -----------------------------------------------------------------------

    def send_job(self, operation_id: str, frame: bytes, final: bool) -> None:
        """Write one job message's frame (the hub's hot path: keep it short)."""
        if self._state is not _OPEN:
            return
        if final:
            if operation_id in self._finished:
                return
            if operation_id in self.subscriptions:
                self.remember_final(operation_id)
        self.send_frame(frame, operation_id)

    def remember_final(self, operation_id: str) -> None:
        """The client has the final of ``operation_id``: never send it another."""
        self._finished[operation_id] = None
        if len(self._finished) > FINALS_REMEMBERED:
            del self._finished[next(iter(self._finished))]

    def send_frame(self, frame: bytes, operation_id: str | None = None) -> None:
        """Write a frame: one client's own (welcome, pong, error, heartbeat), or a job's.

        ``operation_id`` marks a job message, which a newer one of the same operation may
        replace while the client is over budget.
        """
        if self._state is not _OPEN:
            return
        if self._paused:
            self._queue(frame, operation_id)
        else:
            self._out.append(frame)
            if not self._dirty:
                self._dirty = True
                self._hub.mark_dirty(self)

    def write_broadcast(self, data: bytes) -> bool:
        """Write what its broadcast group routed to it, joined (see broadcast.py); False when it
        must take them one by one instead: it is over budget, or it remembers finals."""
        if self._state is not _OPEN:
            return True
        if self._paused or self._finished:
            return False
        if self._out:  # its own frames came first
            self._out.append(data)
            self._transport.writelines(self._out)  # type: ignore[union-attr]  # set by connection_made
            self._out.clear()
        else:
            self._transport.write(data)  # type: ignore[union-attr]  # set by connection_made
        return True

    def flush(self) -> None:
        """Write what was sent since the last flush in one system call (the hub calls this)."""
        self._dirty = False
        out = self._out
        if not out or self._state is not _OPEN:
            return
        if len(out) == 1:
            self._transport.write(out[0])  # type: ignore[union-attr]  # set by connection_made
        else:
            self._transport.writelines(out)  # type: ignore[union-attr]  # set by connection_made
        out.clear()

    def _queue(self, frame: bytes, operation_id: str | None) -> None:
        if self._backlog.put(frame, len(frame), operation_id):
            COALESCED.inc()
        assert self._transport is not None
        if self._backlog.nbytes + self._transport.get_write_buffer_size() > self._hard_cap:
            EVICTED.labels("slow").inc()
            self._backlog.take_all()
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer")

    def heartbeat(self, frame: bytes) -> None:
        """Called by the hub every ping interval with the JSON ping plus a protocol ping."""
        if self._state is not _OPEN:
            return
        if not self._alive:
            EVICTED.labels("ping_timeout").inc()
            self.close(CLOSE_PING_TIMEOUT, "ping timeout")
            return
        self._alive = False
        self.send_frame(frame)

    def close(self, code: int = CLOSE_GOING_AWAY, reason: str = "") -> None:
        """Send a close frame (past any budget) and close the socket once it is flushed."""
        if self._state is not _OPEN:
            return
        self._ws.close(code, reason)
        self._shut(self._ws.data_to_send())

    def _shut(self, last: bytes) -> None:
        # Half-close, then read (and drop) until the peer's end of stream: closing a socket
        # with unread input makes the kernel answer RST, which destroys the close frame on
        # its way (a client still sending an oversized message would see 1006, not 1009).
        # A peer that never ends its stream or reads nothing is aborted after the linger.
        self._enter(_CLOSING)
        assert self._transport is not None
        self._out.append(last)
        self._transport.writelines(self._out)
        self._out.clear()
        if self._transport.can_write_eof():
            self._transport.write_eof()
        else:
            self._transport.close()
        self._linger = asyncio.get_running_loop().call_later(self._hub.settings.close_linger, self.abort)

    def abort(self) -> None:
        """Drop the socket now, unsent data and all."""
        if self._state is _OPEN:
            self._enter(_CLOSING)
        if self._transport is not None and self._state is not _CLOSED:
            self._transport.abort()

    # -- incoming -----------------------------------------------------------------------

    def _feed(self, data: bytes | None) -> None:
        if self._state is not _OPEN:
            return  # lingering after our close frame: the input is read only to be dropped
        # Answers go out in the order of what they answer; what arrived before a close or a
        # bad frame in the same read is answered first: the peer sent it while the
        # connection was open.
        for event in self._ws.receive(data):
            if isinstance(event, TextReceived):
                self._on_text(event.text)
            elif isinstance(event, PingReceived):
                self.send_frame(event.pong)
            elif isinstance(event, BinaryReceived):
                self._refuse("Binary messages are not supported: send JSON text")
        # Not when an answer above already closed us (slow consumer, 1013): a transport
        # refuses writes after its half-close.
        if self._ws.closed and self._state is _OPEN:
            self._shut(self._ws.data_to_send())

    def _on_text(self, text: str) -> None:
        try:
            message = messages.decode(text)
        except msgspec.DecodeError:
            self._refuse("Message is not valid JSON")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self._refuse('A message must be an object {"type": ..., "data": ...}')
            return
        kind = message["type"]
        data = message.get("data")
        try:
            if kind == "ping":
                self.send_frame(text_frame(messages.pong(data)))
            elif kind == "pong":
                pass  # an answer to our heartbeat; data_received already noted it
            elif kind == "auth":
                self._authenticate(data)
            elif self.owner is None:
                self._refuse('Authenticate first: send {"type": "auth", "data": {"token": ...}} with a '
                             "token from POST /api/ws/token")
            elif kind in ("subscribe", "unsubscribe"):
                ids = self._operation_ids(data, adding=kind == "subscribe")
                if ids is not None:
                    if kind == "subscribe":
                        self._hub.subscribe(self, ids)
                    else:
                        self._hub.unsubscribe(self, ids)
            else:
                self._refuse(f"Unknown message type {kind[:64]!r}")
        except Exception:  # a bug here must cost this message, not the connection or the server
            log.exception("WebSocket message %r from %s failed", kind[:64], self.client_id)
            self._refuse("Internal error while handling the message")

    def _authenticate(self, data: Any) -> None:
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            self._refuse("data.token must be the token from POST /api/ws/token")
        elif self.owner is not None:
            self._refuse("This connection is authenticated already")
        else:
            self._hub.spawn(self._hub.authenticate(self, token))

    def _operation_ids(self, data: Any, adding: bool) -> list[str] | None:
        ids = data.get("operationIds") if isinstance(data, dict) else None
        if (not isinstance(ids, list) or not ids or len(ids) > MAX_IDS_PER_MESSAGE
                or not all(isinstance(i, str) and 0 < len(i) <= MAX_OPERATION_ID for i in ids)):
            self._refuse(f"data.operationIds must be a list of 1 to {MAX_IDS_PER_MESSAGE} "
                         f"non-empty strings of at most {MAX_OPERATION_ID} characters")
            return None
        if adding and len(self.subscriptions) + len(ids) > MAX_SUBSCRIPTIONS:
            self._refuse(f"A connection may follow at most {MAX_SUBSCRIPTIONS} operations")
            return None
        return ids

    def _refuse(self, text: str) -> None:
        CLIENT_ERRORS.inc()
        self.send_frame(text_frame(messages.protocol_error(text)))
