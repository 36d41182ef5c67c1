"""The hub: every WebSocket client of this process, who follows what, and fan-out.

Routing. A job message comes from the bus (published here or on another node). It passes
:meth:`LatestState.admit` (the monotonic filter) or is dropped; then its frame is built
once (:func:`text_frame`: serialized by the publisher, framed here) and the same bytes go
to every client of the message's owner that follows the operation: that owner's clients
that never narrowed their subscriptions (its :class:`Broadcast`, where routing is one
append whatever the number of clients), plus its followers of that operationId. Another
owner's client never gets it, not even by subscribing to the id (the operation is then
as unknown to it as one that does not exist). An operation is the pair (owner,
operationId) everywhere here and in latest.py: clients choose upload ids, so two owners
using the same id have two operations, neither shadowing nor revealing the other.

Owners. A client's owner is settled at the handshake (server/handlers/websocket.py) or, for a
client that had no credential there, by a single-use token in an ``auth`` message; until
then it receives nothing but its own replies.

Subscriptions. An empty subscription set means "every operation" (the default); a
client that subscribes follows only its set, and returns to every operation once it has
unsubscribed from all. On subscribe the operation's latest state is sent at once: from
memory without waiting, otherwise looked up (Redis, then the job-table fallback) and
sent unless the operation moved on meanwhile (the client then already has newer).

Writing. Frames are not written at once. A client's own frames (welcome, pong, errors,
heartbeat) and a follower's job messages wait in the client, which the hub flushes
first; then the broadcast groups write to their clients that are behind (broadcast.py).
Writing takes FLUSH_SLICE per turn of the event loop, so a fan-out to 10 000 sockets
(100 ms and more of kernel time) does not hold the loop for its whole duration; messages
routed meanwhile join the writes of the clients not reached yet. A client gets one write
per sweep however many messages it carries: the socket writes, not the Python, are the
cost of a fan-out (on a 2-core VM here, ~10 us of kernel time each), and a message
reaches every client within about one sweep. The slice is short so that messages coming
one per turn (as job progress does) keep pace with the writes: a sweep then carries
several of them to each client.

Heartbeat. One timer for all clients: every ``ping_interval`` the same JSON ping plus a
protocol ping is written to each client, and clients silent since the previous one are
dropped (see protocol.py).

Wiring. What the hub needs from above it comes in through its constructor, not by
assignment later: ``create_hub(settings, redis_url, redeem=..., fallback=...)`` where
``redeem`` turns an ``auth`` token into an owner and ``fallback`` is the job table's answer
for operations nobody remembers (latest.py). Imports point one way: hub -> broadcast ->
protocol, hub -> protocol; a client reaches the hub through
:class:`~server.ws.protocol.ClientHost`, which :class:`Hub` implements.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from core.access.owners import LOCAL
from server.ws import messages
from server.ws.broadcast import Broadcast
from server.ws.bus import LocalBus, ProgressBus, RedisBus, create_redis
from server.ws.connection import PING_FRAME, text_frame
from server.ws.instruments import CLIENTS, SENT, STALE
from server.ws.latest import Fallback, LatestState, Operation
from server.ws.protocol import CLOSE_GOING_AWAY, WsProtocol
from server.ws.settings import WsSettings

log = logging.getLogger(__name__)

FLUSH_SLICE = 0.001
"""Seconds of socket writes per event-loop turn before the loop may run others."""

FLUSH_STEP = 32
"""Writes between two looks at the clock (so a turn makes at least this many)."""

CATCH_UP_LIMIT = 1000
"""Most operations re-read from Redis after the bus was cut off."""

Redeem = Callable[[str], Awaitable[str | None]]
"""Turns an ``auth`` message's token into its owner (None: unknown, spent or expired)."""


class Hub:
    """See the module docstring; :func:`create_hub` builds one from the settings."""

    def __init__(self, settings: WsSettings | None = None, bus: ProgressBus | None = None,
                 latest: LatestState | None = None, *, redeem: Redeem | None = None) -> None:
        self.settings = settings or WsSettings()
        self.bus: ProgressBus = bus or LocalBus()
        self.latest = latest or LatestState(self.settings.latest_max_entries, channel=self.settings.channel)
        self.clients: dict[str, WsProtocol] = {}
        # owner -> its clients with no subscription (they get all of the owner's operations)
        self._everything: dict[str, Broadcast] = {}
        self._followers: dict[Operation, dict[WsProtocol, None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._dirty: deque[WsProtocol] = deque()  # clients with frames waiting for flush()
        self._writing: deque[Broadcast] = deque()  # groups with clients behind
        self._flushing = False
        self.redeem = redeem
        """Turns an ``auth`` message's token into an owner; without it every token is refused."""
        self.bus.listen(self.deliver_local, self._catch_up)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.bus.start()
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="ws-heartbeat")

    async def close(self, code: int = CLOSE_GOING_AWAY, timeout: float = 2.0) -> None:
        """Close every client with ``code`` (1001 at shutdown), wait up to ``timeout`` s, stop."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.wait([self._heartbeat], timeout=1.0)
            self._heartbeat = None
        for client in tuple(self.clients.values()):
            client.close(code, "server shutting down")
        deadline = asyncio.get_running_loop().time() + timeout
        while self.clients and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for client in tuple(self.clients.values()):
            client.abort()
        for task in tuple(self._tasks):
            task.cancel()
        await self.bus.close()

    # -- the API the job system calls -------------------------------------------------------

    async def publish(self, message_type: str, data: dict[str, Any], owner: str = LOCAL) -> None:
        """Send a ``progress``/``complete``/``error`` message to ``owner``'s followers on every node.

        ``owner`` defaults to the single user of open mode.

        ``data`` carries ``operationId`` (and ``progress`` 0..100 for progress); raises
        :class:`~server.ws.messages.BadMessage` (a ValueError) when it does not.
        """
        self.bus.publish(messages.job_envelope(message_type, data, owner))

    # -- clients --------------------------------------------------------------------------

    def attach(self, transport: asyncio.Transport, leftover: bytes = b"", owner: str | None = None) -> WsProtocol:
        """``Upgrade.on_switch``: a new client of ``owner`` on ``transport``, fed the bytes already read."""
        client = WsProtocol(self, owner)
        client.connection_made(transport)
        if leftover:
            client.data_received(leftover)
        return client

    def register(self, client: WsProtocol) -> None:
        self.clients[client.client_id] = client
        if client.owner is not None:
            self._receive_everything(client)
        CLIENTS.inc()

    def unregister(self, client: WsProtocol) -> None:
        if self.clients.pop(client.client_id, None) is None:
            return
        CLIENTS.dec()
        self._stop_everything(client)
        for operation_id in client.subscriptions:
            self._unfollow(client, operation_id)
        client.subscriptions.clear()

    async def authenticate(self, client: WsProtocol, token: str) -> None:
        """An ``auth`` message: make ``client`` its token's owner's, or tell it the token failed."""
        owner = await self.redeem(token) if self.redeem is not None else None
        if client.closed:
            return
        if owner is None or client.owner is not None:
            client.send_frame(text_frame(messages.protocol_error("The token is unknown, spent or expired")))
            return
        client.owner = owner
        if not client.subscriptions:
            self._receive_everything(client)
        client.send_frame(text_frame(messages.authenticated()))

    def subscribe(self, client: WsProtocol, operation_ids: list[str]) -> None:
        """Narrow ``client`` to (more) operations, sending each one's latest state at once.

        A final this process routed while the client received everything is not sent
        again: the client had it (the contract's "exactly once per connection").
        """
        owner = client.owner
        assert owner is not None  # the protocol lets only a client with an owner subscribe
        everything_since = client.everything_since
        self._stop_everything(client)
        for operation_id in operation_ids:
            client.subscriptions.add(operation_id)
            self._followers.setdefault((owner, operation_id), {})[client] = None
            known = self.latest.get(owner, operation_id)
            if known is None:
                self.spawn(self._send_looked_up(client, owner, operation_id))
            else:
                final_at = self.latest.final_at(owner, operation_id)
                if final_at is not None and everything_since is not None and final_at >= everything_since:
                    client.remember_final(operation_id)
                else:
                    client.send_job(operation_id, text_frame(known.payload), known.final)

    def unsubscribe(self, client: WsProtocol, operation_ids: list[str]) -> None:
        for operation_id in operation_ids:
            if operation_id in client.subscriptions:
                client.subscriptions.discard(operation_id)
                self._unfollow(client, operation_id)
        if not client.subscriptions and not client.closed and client.owner is not None:
            self._receive_everything(client)

    def _receive_everything(self, client: WsProtocol) -> None:
        assert client.owner is not None
        if client.everything_since is not None:
            return  # in its group already: a rejoin would skip what is routed to it and unwritten
        group = self._everything.get(client.owner)
        if group is None:
            group = self._everything[client.owner] = Broadcast()
        group.add(client)
        client.everything_since = time.monotonic()

    def _stop_everything(self, client: WsProtocol) -> None:
        """Take ``client`` out of its broadcast group; what was routed to it there and is not
        written yet goes its own way (a client narrowing itself loses nothing routed before)."""
        client.everything_since = None
        owner = client.owner
        group = self._everything.get(owner) if owner is not None else None
        if owner is None or group is None:
            return
        for frame, operation_id, final in group.remove(client):
            client.send_job(operation_id, frame, final)
        if not group.clients:
            del self._everything[owner]

    def _unfollow(self, client: WsProtocol, operation_id: str) -> None:
        assert client.owner is not None  # it subscribed, so it has an owner
        operation = client.owner, operation_id
        followers = self._followers.get(operation)
        if followers is not None:
            followers.pop(client, None)
            if not followers:
                del self._followers[operation]

    async def _send_looked_up(self, client: WsProtocol, owner: str, operation_id: str) -> None:
        found = await self.latest.lookup(owner, operation_id)
        if found is None or client.closed or operation_id not in client.subscriptions:
            return
        # Refused: the operation moved on while it was looked up, and what it moved to was
        # routed to the client (it followed the operation meanwhile), so the client has that.
        if self.latest.admit(found, strictly=True):
            client.send_job(operation_id, text_frame(found.payload), found.final)

    # -- routing --------------------------------------------------------------------------

    def deliver_local(self, envelope: messages.Envelope) -> None:
        """Route a job message to this node's clients only.

        For a transport that already reaches every node by itself (the job table's
        NOTIFY); :meth:`publish` is the way to reach all nodes through the bus.
        """
        if not self.latest.admit(envelope):
            STALE.inc()
            return
        frame = text_frame(envelope.payload)
        operation_id = envelope.operation_id
        final = envelope.final
        owner = envelope.owner
        sent = 0
        group = self._everything.get(owner)
        if group is not None:
            if group.route(frame, operation_id, final):
                self._writing.append(group)
                self._schedule_flush()
            sent = len(group.clients)
        followers = self._followers.get((owner, operation_id))
        if followers:
            # A copy: a client's close must not change the dict this loop walks.
            clients = tuple(followers)
            for client in clients:
                client.send_job(operation_id, frame, final)
            sent += len(clients)
        SENT.inc(sent)

    def mark_dirty(self, client: WsProtocol) -> None:
        """``client`` has frames to write: flush it in the next turn of the loop."""
        self._dirty.append(client)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        # A slice of writes per turn (see the module docstring): the clients' own frames
        # first (pongs and replies are what a waiting client is measuring), then the groups.
        deadline = time.perf_counter() + FLUSH_SLICE
        dirty, groups = self._dirty, self._writing
        while True:
            budget = FLUSH_STEP
            while dirty and budget:
                dirty.popleft().flush()
                budget -= 1
            while groups and budget > 0:
                budget -= groups[0].write(budget)
                if not groups[0].writing:
                    groups.popleft()
            if not dirty and not groups:
                self._flushing = False
                return
            if time.perf_counter() >= deadline:
                asyncio.get_running_loop().call_soon(self._flush)
                return

    def _catch_up(self, since_ms: float) -> None:
        """After the bus was cut off: route the latest state of what moved meanwhile."""
        self.spawn(self._catch_up_from_redis(since_ms))

    async def _catch_up_from_redis(self, since_ms: float) -> None:
        for owner, operation_id in await self.latest.updated_since(since_ms, CATCH_UP_LIMIT):
            found = await self.latest.fetch(owner, operation_id)
            if found is not None:
                self.deliver_local(found)  # admit() drops what this node already had

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ping_interval)
            frame = text_frame(messages.heartbeat()) + PING_FRAME
            for client in tuple(self.clients.values()):
                client.heartbeat(frame)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` as a task the hub keeps (and cancels when it closes)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("WebSocket hub task failed", exc_info=task.exception())


def create_hub(settings: WsSettings, redis_url: str | None = None, *, redeem: Redeem | None = None,
               fallback: Fallback | None = None) -> Hub:
    """A hub on the Redis bus when ``redis_url`` is given (Redis may be down), else in-process.

    ``redeem`` turns ``auth`` tokens into owners (without it every token is refused);
    ``fallback`` answers for operations neither memory nor Redis remembers (latest.py).
    """
    if redis_url is None:
        return Hub(settings, latest=LatestState(settings.latest_max_entries, channel=settings.channel,
                                                fallback=fallback), redeem=redeem)
    redis = create_redis(redis_url)
    return Hub(settings, RedisBus(redis, settings.channel, settings.latest_ttl),
               LatestState(settings.latest_max_entries, redis, settings.channel, fallback), redeem=redeem)
