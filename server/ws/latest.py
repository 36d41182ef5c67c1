"""The latest state of each operation: what a client that subscribes now must be told.

Three sources, asked in order by :meth:`LatestState.lookup`:

1. memory: every job message this process routed, newest per operation (bounded, the
   least recently updated operations forgotten first);
2. Redis, when configured: the publishing node's bus stores each message under
   ``latest_key(channel, operationId)`` with a TTL, so a node that started after the
   operation ended, or forgot it, still knows the final message (and ``recent_key``
   tells a node that was cut off from the bus which operations moved meanwhile);
3. ``fallback``, an extension point (``async (operationId) -> Envelope | None``)
   through which the job table answers for operations nobody remembers.

:meth:`LatestState.admit` is also the filter that makes progress monotonic: a progress
lower than the one known, or anything after a complete/error, is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.ws.messages import BadMessage, Envelope, unpack

log = logging.getLogger(__name__)

Fallback = Callable[[str], Awaitable[Envelope | None]]


def latest_key(channel: str, operation_id: str) -> str:
    return f"{channel}:latest:{operation_id}"


def recent_key(channel: str) -> str:
    """A sorted set: operationId scored by the epoch ms of its last message (see bus.py)."""
    return f"{channel}:recent"


class LatestState:
    __slots__ = ("_memory", "_final_at", "_max_entries", "_redis", "_channel", "fallback")

    def __init__(self, max_entries: int = 100_000, redis: Redis | None = None, channel: str = "nve:ws",
                 fallback: Fallback | None = None) -> None:
        self._memory: dict[str, Envelope] = {}
        self._final_at: dict[str, float] = {}  # monotonic time each final in memory was admitted
        self._max_entries = max_entries
        self._redis = redis
        self._channel = channel
        self.fallback = fallback
        """Asked last by :meth:`lookup`; the job system sets it once the job table exists."""

    def admit(self, envelope: Envelope, strictly: bool = False) -> bool:
        """Record ``envelope`` if it moves its operation forward; False if stale or after a final.

        A progress equal to the known one is admitted (a job may report the same value
        with a new message) unless ``strictly``: for a state looked up for a client that
        follows the operation already, to which the known one was routed.
        """
        operation_id = envelope.operation_id
        known = self._memory.get(operation_id)
        if known is not None:
            if known.progress is None:  # complete/error already
                return False
            if envelope.progress is not None and (envelope.progress < known.progress
                                                  or strictly and envelope.progress == known.progress):
                return False
            del self._memory[operation_id]  # re-inserted last: dict order is recency order
        self._memory[operation_id] = envelope
        if envelope.final:
            self._final_at[operation_id] = time.monotonic()
        if len(self._memory) > self._max_entries:
            oldest = next(iter(self._memory))
            del self._memory[oldest]
            self._final_at.pop(oldest, None)
        return True

    def final_at(self, operation_id: str) -> float | None:
        """When (monotonic) this process routed the operation's final, if memory holds it."""
        return self._final_at.get(operation_id)

    def get(self, operation_id: str) -> Envelope | None:
        """What memory holds for the operation (no I/O)."""
        return self._memory.get(operation_id)

    async def updated_since(self, since_ms: float, limit: int) -> list[str]:
        """Operations (at most ``limit``, newest first) whose state changed in Redis since ``since_ms``."""
        if self._redis is None:
            return []
        try:
            found = await self._redis.zrevrangebyscore(recent_key(self._channel), "+inf", since_ms,
                                                       start=0, num=limit)
        except (RedisError, OSError) as error:
            log.debug("recently updated operations not read from Redis: %s", error)
            return []
        return [op.decode() if isinstance(op, bytes) else op for op in found]

    async def lookup(self, operation_id: str) -> Envelope | None:
        """The operation's latest state from memory, else :meth:`fetch`."""
        known = self._memory.get(operation_id)
        return known if known is not None else await self.fetch(operation_id)

    async def fetch(self, operation_id: str) -> Envelope | None:
        """The operation's latest state from Redis, else the fallback (memory not asked)."""
        if self._redis is not None:
            try:
                payload = await self._redis.get(latest_key(self._channel, operation_id))
                if payload is not None:
                    return unpack(payload)
            except (RedisError, OSError) as error:  # Redis down: fall through, fail fast
                log.debug("latest state of %s not read from Redis: %s", operation_id, error)
            except BadMessage as error:
                log.warning("unreadable latest state of %s in Redis: %s", operation_id, error)
        if self.fallback is not None:
            return await self.fallback(operation_id)
        return None
