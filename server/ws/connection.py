"""The server side of one WebSocket connection after the handshake, sans-I/O.

:class:`WsConnection` wraps wsproto's low-level ``Connection(ConnectionType.SERVER)``:
bytes in, events out. A protocol ping's answer comes in its :class:`PingReceived`, to be
written where that event falls among the others (so answers keep the order of what they
answer); the close frame that ends the connection is taken with
:meth:`WsConnection.data_to_send`. It adds what wsproto leaves open:

- an inbound message may be at most ``max_message_bytes`` (all fragments together) and
  ``max_fragments`` frames, else close 1009; wsproto streams a frame's payload in
  chunks, so the limit holds before the data is buffered, however large a frame claims
  to be;
- text must be UTF-8 (wsproto closes 1007), binary messages are reported, not kept;
- nothing raises: a protocol violation becomes a close frame and a :class:`Closed` event.

Its state is wsproto's :class:`~wsproto.connection.ConnectionState` (:attr:`WsConnection.state`):
OPEN until a :class:`Closed` event was given or :meth:`WsConnection.close` was called,
then LOCAL_CLOSING (our close frame went first), CLOSED (the peer's close was answered,
or its stream ended), never REMOTE_CLOSING for long: the peer's close is answered as it
is read. :attr:`WsConnection.closed` is "not OPEN", not a flag of its own.

Outbound data frames are built by :func:`text_frame`, not by wsproto: server frames
are unmasked and never compressed here, so one frame's bytes can be written to every
client of a broadcast.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

PING_FRAME = b"\x89\x00"
"""A protocol ping with no payload, as a server sends it."""

CLOSE_TOO_BIG = 1009
CLOSE_ABNORMAL = 1006
CLOSE_INTERNAL = 1011


@dataclass(frozen=True, slots=True)
class TextReceived:
    text: str


@dataclass(frozen=True, slots=True)
class BinaryReceived:
    size: int


@dataclass(frozen=True, slots=True)
class PongReceived:
    payload: bytes


@dataclass(frozen=True, slots=True)
class PingReceived:
    """A protocol ping; ``pong`` is the frame that answers it."""

    pong: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection is over: write what is left to send, then close the transport."""

    code: int
    reason: str = ""


Event = TextReceived | BinaryReceived | PongReceived | PingReceived | Closed


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked text frame holding ``payload`` (UTF-8 already)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


class WsConnection:
    """See the module docstring."""

    __slots__ = ("_ws", "_out", "_max_bytes", "_max_fragments", "_text", "_size", "_fragments",
                 "_binary")

    def __init__(self, max_message_bytes: int = 1 << 20, max_fragments: int = 128) -> None:
        self._ws = Connection(ConnectionType.SERVER, extensions=[])
        self._out = bytearray()
        self._max_bytes = max_message_bytes
        self._max_fragments = max_fragments
        # The unfinished text message, UTF-8, in one buffer: wsproto hands a message over in
        # as many pieces as it came in reads, and one str object per piece would hold some
        # 30 times the message's size for a message trickled in 2-byte reads.
        self._text = bytearray()
        self._size = 0
        self._fragments = 0
        self._binary = False

    def __repr__(self) -> str:
        return f"<WsConnection {self._ws.state.name}>"

    @property
    def state(self) -> ConnectionState:
        return self._ws.state

    @property
    def closed(self) -> bool:
        """Whether a :class:`Closed` event was given or the close begun: nothing more will come in."""
        return self._ws.state is not ConnectionState.OPEN

    def receive(self, data: bytes | None) -> list[Event]:
        """Feed bytes read from the socket (``None`` at end of stream); return what they meant."""
        if self.closed:
            return []
        events: list[Event] = []
        try:
            self._ws.receive_data(data)
            for event in self._ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    if not self._message_part(event, events):
                        break
                elif isinstance(event, Ping):
                    events.append(PingReceived(self._ws.send(event.response())))
                elif isinstance(event, Pong):
                    events.append(PongReceived(bytes(event.payload)))
                elif isinstance(event, CloseConnection):
                    self._closed_by_peer_or_parser(event, events)
                    break
        except Exception as error:  # wsproto misuse or a bug: cost this connection only
            self.close(CLOSE_INTERNAL, "internal error")
            events.append(Closed(CLOSE_INTERNAL, str(error)[:100]))
        return events

    @property
    def pending_bytes(self) -> int:
        """Bytes held for the message being received (its text so far; binary is not kept)."""
        return len(self._text)

    def _message_part(self, event: TextMessage | BytesMessage, events: list[Event]) -> bool:
        chunk = event.data
        if isinstance(chunk, str):
            piece = chunk.encode("utf-8")  # the limit counts bytes, not characters
            self._size += len(piece)
        else:
            piece = b""
            self._size += len(chunk)
            self._binary = True
        if event.frame_finished:
            self._fragments += 1
        if self._size > self._max_bytes:  # checked before the piece is kept
            return self._refuse(f"message larger than {self._max_bytes} bytes", events)
        if self._fragments > self._max_fragments:
            return self._refuse(f"message in more than {self._max_fragments} fragments", events)
        if not event.message_finished:
            self._text += piece
            return True
        if self._binary:
            events.append(BinaryReceived(self._size))
        elif self._text:
            self._text += piece
            events.append(TextReceived(self._text.decode("utf-8")))
        elif isinstance(chunk, str):  # always, when not binary: the whole message in one piece (or after empty ones)
            events.append(TextReceived(chunk))
        self._text = bytearray()
        self._size = 0
        self._fragments = 0
        self._binary = False
        return True

    def _refuse(self, reason: str, events: list[Event]) -> bool:
        self._text = bytearray()
        self.close(CLOSE_TOO_BIG, reason)
        events.append(Closed(CLOSE_TOO_BIG, reason))
        return False

    def _closed_by_peer_or_parser(self, event: CloseConnection, events: list[Event]) -> None:
        # The peer's close (answered with ours), the parser's verdict on a bad frame (state
        # still OPEN: we send it), the answer to our own close, or the end of the stream.
        state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:
            self._out += self._ws.send(event.response())
        elif state is ConnectionState.OPEN:
            self._out += self._ws.send(CloseConnection(event.code, event.reason))
        events.append(Closed(event.code, event.reason or ""))

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake with ``code`` (no-op once closing)."""
        if self._ws.state is ConnectionState.OPEN:
            self._out += self._ws.send(CloseConnection(code, reason))

    def data_to_send(self) -> bytes:
        """The close frame to write, once the connection is over (pongs come in their events)."""
        data = bytes(self._out)
        self._out.clear()
        return data
