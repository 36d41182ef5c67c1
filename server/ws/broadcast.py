"""One owner's broadcast clients (those that follow every operation): one log, one write each.

Most clients never narrow their subscriptions, so a job message goes to every client of
its owner. Appending its frame to each client's own queue would cost O(clients) of
Python per message, before a single byte is written. A :class:`Broadcast` keeps one log
of the messages routed to the group instead, and for each client a cursor: the index of
the first message not yet written to it.

Writing. The clients behind the log's end wait in one queue, in the order they fell
behind; the hub takes them from it a slice per turn of the event loop (hub.py) and
writes each one everything past its cursor, as one buffer. A client written goes to the
up-to-date list, and the next routed message moves that whole list to the back of the
queue (each client moved is one the writes took off it: O(1) per write, not per message
and client). So a client is written once per sweep of the queue however many messages
came meanwhile, and a message waits at most one sweep. The buffer is joined once per
cursor value: the clients written in one turn usually stand at the same cursor, so they
get the very same ``bytes`` object.

A client that cannot take the joined buffer (over its budget, so its messages go through
the coalescing backlog, or one that remembers finals from a time it was subscribed) gets
the messages one by one through :meth:`WsProtocol.send_job`, with the same guarantees as
any other client. The log keeps what some client has still to be written: it is emptied
whenever the queue is.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.ws.protocol import WsProtocol

Message = tuple[bytes, str, bool]
"""(frame, operationId, final) of one routed job message."""

COMPACT_AFTER = 64
"""Places of departed clients tolerated before they are swept out (or as many as clients)."""


class _Member:
    """A client's place in the group; ``client`` is None once it left (the place is then
    skipped where it stands, and dropped at the next compaction)."""

    __slots__ = ("client", "cursor")

    def __init__(self, client: WsProtocol, cursor: int) -> None:
        self.client: WsProtocol | None = client
        self.cursor = cursor


class Broadcast:
    """See the module docstring; the hub owns one per owner that has broadcast clients."""

    __slots__ = ("clients", "_log", "_base", "_behind", "_current", "_joined", "_left")

    def __init__(self) -> None:
        self.clients: dict[WsProtocol, _Member] = {}
        self._log: list[Message] = []
        self._base = 0  # absolute index of _log[0]
        self._behind: deque[_Member] = deque()  # to be written, in the order they fell behind
        self._current: list[_Member] = []  # written up to the log's end
        self._joined: dict[int, bytes] = {}  # cursor -> the frames from there to the end, joined
        self._left = 0  # places of clients gone, still in _behind or _current

    @property
    def end(self) -> int:
        """Absolute index the next routed message gets."""
        return self._base + len(self._log)

    @property
    def writing(self) -> bool:
        """Whether some client is behind (the hub then has this group in its flush queue)."""
        return bool(self._behind)

    def add(self, client: WsProtocol) -> None:
        """``client`` joins: it gets the messages routed from now on."""
        member = _Member(client, self.end)
        self.clients[client] = member
        self._current.append(member)

    def remove(self, client: WsProtocol) -> list[Message]:
        """``client`` leaves; returns the messages routed to it and not yet written."""
        member = self.clients.pop(client, None)
        if member is None:
            return []
        member.client = None
        self._left += 1
        if self._left > max(COMPACT_AFTER, len(self.clients)):
            # Clients come and go while no message is routed: without this their places would
            # pile up (amortized O(1) a departure: one pass over the places per as many of them).
            # In place: a write in progress holds these two.
            behind = [m for m in self._behind if m.client is not None]
            self._behind.clear()
            self._behind.extend(behind)
            self._current[:] = [m for m in self._current if m.client is not None]
            self._left = 0
        return self._log[member.cursor - self._base:]

    def route(self, frame: bytes, operation_id: str, final: bool) -> bool:
        """Add a message for every client; True when the group has just fallen behind (the
        hub must schedule its writes), False when it was behind already or has no client."""
        self._log.append((frame, operation_id, final))
        self._joined.clear()
        was_writing = bool(self._behind)
        self._behind.extend(self._current)
        self._current.clear()
        if not self._behind:
            self._empty()
        return bool(self._behind) and not was_writing

    def write(self, budget: int) -> int:
        """Write to up to ``budget`` clients that are behind; returns how many were written."""
        written = 0
        behind, current = self._behind, self._current
        log, base, joined = self._log, self._base, self._joined
        end = base + len(log)
        while behind and written < budget:
            member = behind.popleft()
            client = member.client
            if client is None:
                self._left -= 1
                continue
            cursor = member.cursor
            member.cursor = end
            current.append(member)
            data = joined.get(cursor)
            if data is None:
                data = joined[cursor] = b"".join([message[0] for message in log[cursor - base:]])
            if not client.write_broadcast(data):
                for frame, operation_id, final in log[cursor - base:]:
                    client.send_job(operation_id, frame, final)
            written += 1
        if not behind:
            self._empty()
        return written

    def _empty(self) -> None:
        # Nobody is behind: every client has been written the whole log.
        self._base = self.end
        self._log.clear()
        self._joined.clear()
