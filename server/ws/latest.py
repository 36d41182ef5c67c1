"""The latest state of each operation: what a client that subscribes now must be told.

An operation is an owner's: its identity is the pair (owner, operationId). Clients choose
some ids themselves (an upload's ``X-Operation-Id``), so two owners may well pick the
same one; keyed by the id alone, one owner's final would shadow the other's operation
(its messages refused as "after a final") and betray that the id is in use.

Three sources, asked in order by :meth:`LatestState.lookup`:

1. memory: every job message this process routed, newest per operation (bounded, the
   least recently updated operations forgotten first);
2. Redis, when configured: the publishing node's bus stores each message under
   ``latest_key(channel, owner, operationId)`` with a TTL, so a node that started after the
   operation ended, or forgot it, still knows the final message (and ``recent_key``
   tells a node that was cut off from the bus which operations moved meanwhile);
3. ``fallback``, an extension point (``async (operationId) -> Envelope | None``, given
   to the constructor, or to ``create_hub(..., fallback=...)``) through which the job
   table answers for operations nobody remembers (its answer counts only when it is the
   asking owner's).

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
"""The job table's answer for an operationId nobody remembers (any owner's; checked here)."""
Operation = tuple[str, str]
"""(owner, operationId): what names an operation."""


def operation_key(owner: str, operation_id: str) -> str:
    """The operation as one string, ``<owner> LF <operationId>`` (owner ids never hold a
    line feed, so it splits back unambiguously; operation ids may hold ``:``)."""
    return f"{owner}\n{operation_id}"


def latest_key(channel: str, owner: str, operation_id: str) -> str:
    return f"{channel}:latest:{operation_key(owner, operation_id)}"


def recent_key(channel: str) -> str:
    """A sorted set: :func:`operation_key` scored by the epoch ms of its last message (see bus.py)."""
    return f"{channel}:recent"


class LatestState:
    """See the module docstring."""

    __slots__ = ("_memory", "_final_at", "_max_entries", "_redis", "_channel", "fallback")

    def __init__(self, max_entries: int = 100_000, redis: Redis | None = None, channel: str = "nve:ws",
                 fallback: Fallback | None = None) -> None:
        self._memory: dict[Operation, Envelope] = {}
        self._final_at: dict[Operation, float] = {}  # monotonic time each final in memory was admitted
        self._max_entries = max_entries
        self._redis = redis
        self._channel = channel
        self.fallback = fallback
        """Asked last by :meth:`lookup`; None: nothing beyond memory and Redis is asked."""

    def admit(self, envelope: Envelope, strictly: bool = False) -> bool:
        """Record ``envelope`` if it moves its operation forward; False if stale or after a final.

        A progress equal to the known one is admitted (a job may report the same value
        with a new message) unless ``strictly``: for a state looked up for a client that
        follows the operation already, to which the known one was routed.
        """
        operation = envelope.owner, envelope.operation_id
        known = self._memory.get(operation)
        if known is not None:
            if known.progress is None:  # complete/error already
                return False
            if envelope.progress is not None and (envelope.progress < known.progress
                                                  or strictly and envelope.progress == known.progress):
                return False
            del self._memory[operation]  # re-inserted last: dict order is recency order
        self._memory[operation] = envelope
        if envelope.final:
            self._final_at[operation] = time.monotonic()
        if len(self._memory) > self._max_entries:
            oldest = next(iter(self._memory))
            del self._memory[oldest]
            self._final_at.pop(oldest, None)
        return True

    def final_at(self, owner: str, operation_id: str) -> float | None:
        """When (monotonic) this process routed the operation's final, if memory holds it."""
        return self._final_at.get((owner, operation_id))

    def get(self, owner: str, operation_id: str) -> Envelope | None:
        """What memory holds for the operation (no I/O)."""
        return self._memory.get((owner, operation_id))

    async def updated_since(self, since_ms: float, limit: int) -> list[Operation]:
        """Operations (at most ``limit``, newest first) whose state changed in Redis since ``since_ms``."""
        if self._redis is None:
            return []
        try:
            found = await self._redis.zrevrangebyscore(recent_key(self._channel), "+inf", since_ms,
                                                       start=0, num=limit)
        except (RedisError, OSError) as error:
            log.debug("recently updated operations not read from Redis: %s", error)
            return []
        operations: list[Operation] = []
        for member in found:
            if isinstance(member, bytes):
                member = member.decode()
            if not isinstance(member, str):  # a (member, score) pair: only asked for WITHSCORES
                continue
            owner, newline, operation_id = member.partition("\n")
            if newline:  # else written before operations had owners: nobody's to route
                operations.append((owner, operation_id))
        return operations

    async def lookup(self, owner: str, operation_id: str) -> Envelope | None:
        """The operation's latest state from memory, else :meth:`fetch`."""
        known = self._memory.get((owner, operation_id))
        return known if known is not None else await self.fetch(owner, operation_id)

    async def fetch(self, owner: str, operation_id: str) -> Envelope | None:
        """The operation's latest state from Redis, else the fallback (memory not asked)."""
        if self._redis is not None:
            try:
                payload = await self._redis.get(latest_key(self._channel, owner, operation_id))
                if payload is not None:  # bytes: the client does not decode responses
                    return unpack(payload.encode() if isinstance(payload, str) else payload)
            except (RedisError, OSError) as error:  # Redis down: fall through, fail fast
                log.debug("latest state of %s not read from Redis: %s", operation_id, error)
            except BadMessage as error:
                log.warning("unreadable latest state of %s in Redis: %s", operation_id, error)
        if self.fallback is not None:
            found = await self.fallback(operation_id)
            # The job table knows ids alone: another owner's job of that id is not this operation.
            if found is not None and found.owner == owner:
                return found
        return None
