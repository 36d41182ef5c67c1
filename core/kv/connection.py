"""The request path's Redis client, wrapped so that a dead Redis costs callers nothing.

Redis is optional (docs/CONTRACT.md section 1): the app starts and serves without it and uses it
once it comes up. :class:`RedisConnection` makes that hold for every caller:

- Lazy: constructing it opens no socket; the first command connects.
- One policy: the client is built by :func:`core.kv.client.create_client`, like every
  other Redis client of the process (timeouts, keepalive, no retries inside redis-py).
- One namespace: :meth:`RedisConnection.key` puts the deployment's ``NVE_REDIS_PREFIX`` in
  front of a key name; every store built on the connection names its keys through it.
- Fail fast: every command goes through :meth:`RedisConnection.run`. A connection error is
  retried at once on a fresh connection (a dropped connection is the common transient
  failure), at most ``policy.max_retries`` (3) times; each failure is counted by a
  :class:`~core.kv.breaker.CircuitBreaker`. Once it opens, :meth:`run` raises
  :class:`KvUnavailable` without touching Redis, so while Redis is down a request pays
  nothing for it (a cache read is an immediate miss, a session read goes to PostgreSQL).
- A timeout is not retried: the command may have run (a rate-limit count must not be taken
  twice) and a Redis too slow to answer in 250 ms is not helped by more load. It counts as
  a failure and the caller takes its fallback, so even a hung Redis costs at most
  ``failure_threshold`` requests a quarter of a second each (half a second for a connect
  to a host that does not answer at all) before the breaker opens. A Redis that is down
  refuses the connection at once and costs nothing. The connect timeout is the larger
  because a burst of fresh connections on a busy machine takes a while to get through.
- Recovery: while the breaker is open a background task probes Redis with ``PING`` on the
  reconnect backoff ``min(n * 50 ms, 2 s)`` and closes the breaker when it answers.
- Stale copies: a write that failed leaves Redis with the value it was meant to replace
  (a Redis that was only unreachable keeps it, one restarted from a snapshot brings it
  back), and serving that would undo a change already acknowledged from PostgreSQL.
  :meth:`RedisConnection.forget` deletes such a key at once if it can, else remembers it,
  and the recovery deletes every remembered key before it closes the breaker, so no
  command of this process reads one first. (Other nodes may, until they recover too.)

redis-py's own retry loop is off (see core/kv/client.py): it would sleep between attempts
inside the request, and every failure has to reach the breaker.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from prometheus_client import Counter, Histogram
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.kv.breaker import BreakerState, CircuitBreaker
from core.kv.client import POLICY, RedisPolicy, create_client
from core.registry import REGISTRY
from core.tasks import cancel_and_wait

log = logging.getLogger("nve.redis")

T = TypeVar("T")

#: What a command may raise when Redis cannot serve us (as opposed to a bug in the command):
#: unreachable, too slow, a replica after a failover (READONLY), full without eviction (OOM).
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, ReadOnlyError, OutOfMemoryError)
#: The part of UNREACHABLE that a fresh connection may cure at once.
RETRYABLE = (RedisConnectionError, ConnectionError)

COMMANDS = Counter(
    "nve_redis_commands", "Redis commands by outcome: ok, failed (unreachable), rejected "
    "(breaker open, Redis not touched).", ["outcome"], registry=REGISTRY,
)
COMMAND_SECONDS = Histogram(
    "nve_redis_command_seconds", "Round trip of successful Redis commands (retries included).",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
    registry=REGISTRY,
)
BREAKER_TRANSITIONS = Counter(
    "nve_redis_breaker_transitions", "Redis circuit-breaker transitions by the state entered.",
    ["state"], registry=REGISTRY,
)
_OK, _FAILED, _REJECTED = (COMMANDS.labels(outcome) for outcome in ("ok", "failed", "rejected"))

MAX_STALE_KEYS = 100_000
"""Keys remembered for deletion at most; past it the oldest are dropped (and may be served stale)."""
_DELETE_BATCH = 1000


class KvUnavailable(Exception):
    """Redis cannot be used right now; the caller takes its fallback path."""


class RedisConnection:
    """One Redis client with a circuit breaker; see the module docstring."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "",
        policy: RedisPolicy = POLICY,
        failure_threshold: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = create_client(url, "kv", policy)
        self.prefix = prefix
        """Put in front of every key name (``NVE_REDIS_PREFIX``); empty: the contract's names."""
        self._max_retries = policy.max_retries
        self.breaker = CircuitBreaker(
            failure_threshold=failure_threshold, clock=clock, on_change=self._on_breaker_change,
        )
        self._probe: asyncio.Task[None] | None = None
        self._closed = False
        self._last_error: BaseException | None = None
        self._stale: collections.OrderedDict[str, None] = collections.OrderedDict()

    def key(self, name: str) -> str:
        """The Redis key for ``name`` (``metadata:a.mp4``) in this deployment's namespace."""
        return self.prefix + name

    @property
    def available(self) -> bool:
        """Whether commands currently go to Redis (the breaker is closed)."""
        return self.breaker.allow_request()

    async def run(self, command: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """``await command(client)`` against Redis, or raise :class:`KvUnavailable` fast.

        ``command`` is called once per attempt, so it must build a fresh awaitable each time
        (``lambda r: r.get(key)``). Errors other than unreachability (a wrong type, a
        script error) propagate unchanged: they are bugs, not outages. The outcome counts
        toward the breaker only if it is still closed: once it opened, the probe alone decides
        (a slow reply that lands meanwhile must not close it behind the probe's back).
        """
        for _ in range(self._max_retries + 1):
            if not self.breaker.allow_request():
                _REJECTED.inc()
                raise KvUnavailable("Redis is unavailable (circuit open)")
            started = time.perf_counter()
            try:
                result = await command(self._client)
            except UNREACHABLE as error:
                _FAILED.inc()
                self._last_error = error
                if self.breaker.allow_request():
                    self.breaker.record_failure()
                if isinstance(error, RETRYABLE):
                    continue
                raise KvUnavailable(f"Redis did not answer: {error}") from error
            COMMAND_SECONDS.observe(time.perf_counter() - started)
            _OK.inc()
            if self.breaker.allow_request():
                self.breaker.record_success()
            return result
        raise KvUnavailable(f"Redis did not answer after {self._max_retries} retries")

    async def forget(self, key: str) -> None:
        """Delete ``key`` now, or, if Redis cannot be reached, before it is used again.

        For a key whose write just failed: Redis may still hold an older value under it.
        ``key`` is the full name, as :meth:`key` built it.
        """
        try:
            await self.run(lambda client: client.delete(key))
        except KvUnavailable:
            self._stale[key] = None
            self._stale.move_to_end(key)
            if len(self._stale) > MAX_STALE_KEYS:
                dropped, _ = self._stale.popitem(last=False)
                log.warning("too many Redis keys to delete on recovery; %s may be served stale", dropped)

    async def ping(self) -> bool:
        """Whether Redis answers now (through the breaker, so it never waits on a dead one)."""
        try:
            return bool(await self.run(lambda client: client.ping()))
        except KvUnavailable:
            return False

    async def close(self) -> None:
        """Stop the probe and close every connection. The object is unusable afterwards."""
        self._closed = True
        await cancel_and_wait(self._probe)
        self._probe = None
        await self._client.aclose()

    def _on_breaker_change(self, old: BreakerState, new: BreakerState) -> None:
        BREAKER_TRANSITIONS.labels(new.value).inc()
        if new is BreakerState.OPEN and old is BreakerState.CLOSED:
            kwargs = self._client.connection_pool.connection_kwargs
            log.warning("Redis at %s:%s unusable (%s); serving without it until it answers again",
                        kwargs.get("host"), kwargs.get("port"), self._last_error)
            if not self._closed and (self._probe is None or self._probe.done()):
                self._probe = asyncio.get_running_loop().create_task(self._recover())
        elif new is BreakerState.CLOSED:
            log.warning("Redis is back; using it again")

    async def _recover(self) -> None:
        """Probe until Redis answers, on the breaker's reconnect backoff, then close it."""
        # The idle pooled connections died with the server; drop them so none is reused
        # stale. Connections in use are left to fail (or finish) on their own.
        await self._client.connection_pool.disconnect(inuse_connections=False)
        while self.breaker.state is not BreakerState.CLOSED:
            await asyncio.sleep(self.breaker.seconds_until_probe())
            if not self.breaker.begin_probe():
                continue
            try:
                await self._client.ping()
                await self._delete_stale()
            except Exception as error:  # anything but PONG keeps it open (NOAUTH, LOADING, ...)
                log.debug("redis probe failed: %r", error)
                self.breaker.record_failure()
            else:
                self.breaker.record_success()

    async def _delete_stale(self) -> None:
        """Delete the keys :meth:`forget` could not, while the breaker still keeps commands out.

        Keys remembered while this runs are deleted too: nothing awaits between the last
        check of the set and the closing of the breaker.
        """
        while self._stale:
            batch = list(self._stale)[:_DELETE_BATCH]
            await self._client.delete(*batch)
            for key in batch:
                self._stale.pop(key, None)
