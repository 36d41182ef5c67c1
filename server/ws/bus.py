"""ProgressBus: how a job message published on one node reaches the hubs of every node.

:class:`LocalBus` delivers within the process. :class:`RedisBus` (used whenever Redis is
configured) delivers locally at once, then PUBLISHes on a shared channel, each message
prefixed with the publishing node's id so a node skips its own echo. With the publish it
also SETs the message as the operation's latest state (with a TTL; see latest.py).

Cost. Every Redis round trip is paid on the event loop that also writes the fan-out, so
the sender sends what waits as one pipeline per round trip, and in it one SET per
operation (the newest message of each: the older ones' SETs would be overwritten in the
same pipeline), the PUBLISHes, one ZADD; the ``recent_key`` set is trimmed of entries
older than the TTL at most every :data:`TRIM_EVERY` seconds, not per batch. The
subscriber reads with no timeout of its own (an asyncio timeout per message costs as
much as the message): a dead connection is found by TCP keepalive (core/kv/client.py)
as before, and a quiet channel costs nothing.

Redis down: local delivery goes on untouched. Messages for other nodes wait in a
:class:`Backlog` (progress coalesced per operation, finals kept; at most
``outage_limit`` operations) and are sent when Redis answers again. The subscriber
reconnects with the contract's backoff, ``min(n * 50 ms, 2 s)``, and then calls the
``on_resume`` listeners with the time it was cut off: pub/sub does not replay, so the
hub re-reads the latest state of every operation that moved since (the sender records
each operation's last update in the ``recent_key`` sorted set for this).

The Redis client follows the process's one connection policy (:func:`create_redis`, by
core/kv/client.py: timeouts, keepalive, client name ``nve:bus``); the subscription holds a
connection of its own from that client's pool, made the same way. redis-py retries
nothing itself, so every failure reaches the loops here: the sender backs off and keeps
its backlog, and the subscriber never gets resubscribed silently behind its back (which
would skip the catch-up on what pub/sub did not replay). The channel arrives in the
deployment's Redis namespace already (server/ws/settings.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.kv.breaker import reconnect_delay
from core.kv.client import create_client
from core.registry import REGISTRY
from server.ws.backlog import Backlog
from server.ws.latest import latest_key, operation_key, recent_key
from server.ws.messages import BadMessage, Envelope, pack, unpack

log = logging.getLogger(__name__)

Deliver = Callable[[Envelope], None]
Resume = Callable[[float], None]
"""Called with the epoch ms since which this node may have missed messages."""

RESUME_MARGIN_MS = 5000.0
"""Extra look-back on resume, for clock skew between nodes."""

TRIM_EVERY = 60.0
"""Seconds between two trims of the recent set (its entries older than the TTL are dropped)."""

BUS_PUBLISHED = Counter("nve_ws_bus_published_total", "Job messages sent to Redis for other nodes",
                        registry=REGISTRY)
BUS_RECEIVED = Counter("nve_ws_bus_received_total", "Job messages received from other nodes",
                       registry=REGISTRY)
BUS_DROPPED = Counter("nve_ws_bus_dropped_total",
                      "Job messages for other nodes dropped: coalesced during a Redis outage or over its limit",
                      registry=REGISTRY)
BUS_FAILURES = Counter("nve_ws_bus_failures_total", "Failed Redis publish or subscribe attempts",
                       registry=REGISTRY)
BUS_UP = Gauge("nve_ws_bus_subscribed", "1 while this node is subscribed to the Redis channel",
               registry=REGISTRY)


class ProgressBus(Protocol):
    @property
    def state(self) -> str:
        """``local`` (no Redis), ``up`` (subscribed to Redis) or ``down`` (reconnecting)."""
        ...

    def listen(self, deliver: Deliver, on_resume: Resume | None = None) -> None: ...
    def publish(self, envelope: Envelope) -> None: ...
    async def start(self) -> None: ...
    async def close(self) -> None: ...


class _Listeners:
    """The listener lists both buses share."""

    def __init__(self) -> None:
        self._deliver: list[Deliver] = []
        self._resume: list[Resume] = []

    def listen(self, deliver: Deliver, on_resume: Resume | None = None) -> None:
        self._deliver.append(deliver)
        if on_resume is not None:
            self._resume.append(on_resume)

    def _deliver_all(self, envelope: Envelope) -> None:
        for deliver in self._deliver:
            try:
                deliver(envelope)
            except Exception:  # one broken listener must not starve the others
                log.exception("bus listener failed on %s", envelope.type)


class LocalBus(_Listeners):
    """Delivery within this process only: one node, no Redis."""

    state = "local"

    def publish(self, envelope: Envelope) -> None:
        self._deliver_all(envelope)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


def create_redis(url: str) -> Redis:
    """The bus's client (and its latest-state store's), under the process's Redis policy."""
    return create_client(url, "bus")


class RedisBus(_Listeners):
    """See the module docstring. It owns ``redis``: :meth:`close` closes it."""

    def __init__(self, redis: Redis, channel: str = "nve:ws", latest_ttl: int = 3600,
                 outage_limit: int = 10_000) -> None:
        super().__init__()
        self._redis = redis
        self._channel = channel
        self._ttl = latest_ttl
        self._outage_limit = outage_limit
        self._node = uuid.uuid4().hex.encode()
        self._pending: Backlog[Envelope] = Backlog()
        self._down = False  # coalesce waiting progress only while Redis fails, never when merely busy
        self._wake = asyncio.Event()
        self.subscribed = asyncio.Event()
        """Set while the subscription to the channel is live."""
        self._first_attempt = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def state(self) -> str:
        return "up" if self.subscribed.is_set() else "down"

    async def start(self, wait: float = 2.0) -> None:
        """Start the sender and the subscriber; wait (at most ``wait`` s) for the first attempt.

        Whether it succeeded or not: with Redis down the node serves locally and the
        subscriber keeps trying in the background.
        """
        self._tasks = [asyncio.create_task(self._send_loop(), name="ws-bus-send"),
                       asyncio.create_task(self._listen_loop(), name="ws-bus-listen")]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(), wait)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # bounded: shutdown must not hang on a task that cannot finish
            await asyncio.wait(self._tasks, timeout=2.0)
        self._tasks = []
        BUS_UP.set(0)
        await self._redis.aclose()

    def publish(self, envelope: Envelope) -> None:
        self._deliver_all(envelope)
        coalesce = operation_key(envelope.owner, envelope.operation_id) if self._down else None
        if self._pending.put(envelope, len(envelope.payload), coalesce):
            BUS_DROPPED.inc()
        self._wake.set()

    async def _send_loop(self) -> None:
        failures = 0
        trimmed = -TRIM_EVERY  # monotonic time of the last trim of the recent set
        while True:
            await self._wake.wait()
            self._wake.clear()
            while len(self._pending):
                batch = self._pending.take_all()
                now = time.time() * 1000
                recent = recent_key(self._channel)
                packed = [(envelope, pack(envelope)) for _, envelope, _ in batch]
                # Publish order; for each operation its newest message, whose SET is the one that stays.
                newest = {operation_key(envelope.owner, envelope.operation_id): (envelope, data)
                          for envelope, data in packed}
                trim = time.monotonic() - trimmed >= TRIM_EVERY
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for envelope, data in newest.values():
                            pipe.set(latest_key(self._channel, envelope.owner, envelope.operation_id), data,
                                     ex=self._ttl)
                        for _, data in packed:
                            pipe.publish(self._channel, self._node + b"|" + data)
                        pipe.zadd(recent, dict.fromkeys(newest, now))
                        if trim:
                            pipe.zremrangebyscore(recent, 0, now - self._ttl * 1000)
                        await pipe.execute()
                except (RedisError, OSError) as error:
                    failures += 1
                    self._down = True
                    BUS_FAILURES.inc()
                    log.debug("Redis publish failed (%d): %s", failures, error)
                    self._pending.put_back(batch)
                    while len(self._pending) > self._outage_limit:
                        self._pending.popleft()
                        BUS_DROPPED.inc()
                    await asyncio.sleep(reconnect_delay(failures))
                    continue
                if trim:
                    trimmed = time.monotonic()
                failures = 0
                self._down = False
                BUS_PUBLISHED.inc(len(batch))

    async def _listen_loop(self) -> None:
        failures = 0
        lost_at = time.time() * 1000  # a node starting cut off may have missed what came before
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if failures:
                    self._resumed(lost_at - RESUME_MARGIN_MS)
                failures = 0
                self.subscribed.set()
                self._first_attempt.set()
                BUS_UP.set(1)
                while True:
                    message = await pubsub.get_message(timeout=None)  # see "Cost" in the module docstring
                    if message is not None:
                        self._received(message["data"])
            except (RedisError, OSError) as error:
                if not failures:
                    lost_at = time.time() * 1000
                failures += 1
                BUS_FAILURES.inc()
                log.debug("Redis subscription lost (%d): %s", failures, error)
            finally:
                self._first_attempt.set()
                self.subscribed.clear()
                BUS_UP.set(0)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(reconnect_delay(failures))

    def _received(self, data: bytes) -> None:
        node, _, packed = data.partition(b"|")
        if node == self._node:
            return
        try:
            envelope = unpack(packed)
        except BadMessage as error:
            log.warning("unreadable message on %s: %s", self._channel, error)
            return
        BUS_RECEIVED.inc()
        self._deliver_all(envelope)

    def _resumed(self, since_ms: float) -> None:
        for resume in self._resume:
            try:
                resume(since_ms)
            except Exception:
                log.exception("bus resume listener failed")
