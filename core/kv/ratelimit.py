"""Rate limiting: a sliding-window counter, counted in this process and shared through Redis.

The sliding-window counter (the estimate ``previous * (1 - elapsed / window) + current``
over two fixed windows) smooths the double burst a plain fixed window allows at its edges
and costs one small hash per key.

Each node decides in-process, exactly, on the counts every node reported to Redis plus its
own counted since (:class:`SlidingWindow` holds both per key), so a request costs Redis
nothing. A background exchange, one Lua script for every key touched, adds this node's new
counts to the hashes in Redis and reads back the totals, on Redis' clock (nodes need not
agree on the time: windows begin at the same moment everywhere). It runs every
``max_age / 2`` while this node has counted something, and at once, for all keys waiting,
when a request names a key whose totals are unknown or older than ``max_age``: such a
request waits for the exchange in flight, if any, and its own; a key in use never waits.
One exchange runs at a time, so Redis sees a few calls per second per node instead of one
per request.

The bound: a decision misses only what other nodes counted for the key after this node's
last exchange read it (at most ``max_age`` ago) and what they had counted but not yet
pushed then (at most ``max_age / 2`` of their counts). So a key's requests admitted by the
whole cluster over a window exceed the limit by at most what the other nodes admitted for
it in the last ``1.5 * max_age`` (150 ms with the default ``max_age`` of 100 ms), and by at
most ``(nodes - 1) * limit`` in any case, since each node counts its own requests exactly.
One node alone is exact. Counts not yet pushed when an exchange fails are lost, and so are
those of a node that stops without :meth:`RateLimiter.flush`: the limit errs towards
letting in.

When Redis goes away, totals already read are decided on until they are ``max_age`` old;
then (or at once, once the breaker is open) the same arithmetic runs on a second
:class:`SlidingWindow` that nothing shares: each node counts on its own, so a client may
get one limit's worth per node (fail open a little rather than refuse everyone or wait on
Redis). When Redis is back its totals count again; the fallback's counts are not carried
over.

Denied requests are not counted, so a client that keeps knocking is let in again as soon as
its window allows. ``retry_after`` is exact to the millisecond; ``Retry-After`` wants whole
seconds, see :attr:`Decision.retry_after_header`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple, cast

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import NoScriptError

from core.kv.connection import KvUnavailable, RedisConnection
from core.registry import REGISTRY

DECISIONS = Counter(
    "nve_ratelimit_decisions", "Rate-limit decisions by result (allowed, limited) and the counts "
    "they were taken on (redis: shared through Redis; local: this process's alone, Redis down).",
    ["result", "backend"], registry=REGISTRY,
)
# (allowed, on shared counts) -> its child: labels() takes a lock and a lookup per call.
_DECIDED = {(allowed, shared): DECISIONS.labels("allowed" if allowed else "limited", "redis" if shared else "local")
            for allowed in (True, False) for shared in (True, False)}

# KEYS = the counters' hashes; ARGV = per key: window ms, then two (window index, count) pairs
# of this node's counts not yet added (count 0: none). Returns Redis' time in ms, then each
# key's current and previous window's count. Fields: w = index of the current window, c = its
# count, p = the previous window's count. Counts a node placed in an older window are dropped.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now}
for i, key in ipairs(KEYS) do
  local a = (i - 1) * 5
  local window = tonumber(ARGV[a + 1])
  local idx = math.floor(now / window)
  local s = redis.call('HMGET', key, 'w', 'c', 'p')
  local w = tonumber(s[1])
  local c = tonumber(s[2]) or 0
  local p = tonumber(s[3]) or 0
  if w ~= idx then
    if w == idx - 1 then p = c else p = 0 end
    c = 0
  end
  for j = a + 2, a + 4, 2 do
    local at, n = tonumber(ARGV[j]), tonumber(ARGV[j + 1])
    if at >= idx then c = c + n elseif at == idx - 1 then p = p + n end
  end
  redis.call('HSET', key, 'w', idx, 'c', c, 'p', p)
  redis.call('PEXPIRE', key, 2 * window)
  out[#out + 1] = c
  out[#out + 1] = p
end
return out
"""
_SHA = hashlib.sha1(_LUA.encode()).hexdigest()
_BATCH = 500
"""Keys per script call: one call runs atomically and holds Redis meanwhile."""


class Decision(NamedTuple):
    """Unpacks as ``(allowed, retry_after_s)``; ``retry_after`` is 0 when allowed."""

    allowed: bool
    retry_after: float

    @property
    def retry_after_header(self) -> str:
        """The ``Retry-After`` value: whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class _Counts:
    """One key's windows: Redis' totals as of the last exchange, and this process's counts since."""

    __slots__ = ("window_ms", "index", "current", "previous", "local", "synced_at")

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.index = 0
        """The window Redis' totals are of (0, and no totals, before the first exchange)."""
        self.current = 0
        self.previous = 0
        self.local: dict[int, int] = {}
        """Window index -> requests this process counted and Redis has not added yet (two at most)."""
        self.synced_at = -math.inf
        """When (this process's monotonic clock) the last exchange that read the totals started."""

    def at(self, idx: int) -> tuple[int, int]:
        """The previous and the current window's count when window ``idx`` is the current one."""
        if self.index >= idx:  # (after: Redis' clock passed a window's end a moment before ours)
            previous, current = self.previous, self.current
        else:
            previous, current = (self.current if self.index == idx - 1 else 0), 0
        return previous + self.local.get(idx - 1, 0), current + self.local.get(idx, 0)

    def count(self, idx: int) -> None:
        self.local[idx] = self.local.get(idx, 0) + 1
        if len(self.local) > 2:  # only the current and the previous window weigh anything
            for stale in [at for at in self.local if at < idx - 1]:
                del self.local[stale]

    def last_window(self) -> int:
        return max(self.index, *self.local) if self.local else self.index


class SlidingWindow:
    """Sliding-window counters per key, held in this process (see the module docstring)."""

    def __init__(self, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._counters: dict[str, _Counts] = {}

    def hit(self, key: str, limit: int, window_ms: int) -> tuple[bool, int]:
        """Count one request on ``key`` if allowed; (allowed, retry after in ms)."""
        now = int(self._clock() * 1000)
        idx = now // window_ms
        counts = self._counters.get(key)
        previous, current = counts.at(idx) if counts is not None and counts.window_ms == window_ms else (0, 0)
        elapsed = now - idx * window_ms
        if previous * (window_ms - elapsed) / window_ms + current + 1 <= limit:
            self.counts(key, window_ms).count(idx)
            return True, 0
        if current + 1 <= limit:
            wait = window_ms - elapsed - (limit - 1 - current) * window_ms / previous
        else:
            wait = window_ms - elapsed + window_ms * (1 - (limit - 1) / current)
        return False, math.ceil(wait)

    def get(self, key: str) -> _Counts | None:
        return self._counters.get(key)

    def counts(self, key: str, window_ms: int) -> _Counts:
        """``key``'s counters (new ones if it had none, or for another window length)."""
        counts = self._counters.get(key)
        if counts is None or counts.window_ms != window_ms:
            if counts is None and len(self._counters) >= self._max_keys:
                self._evict(int(self._clock() * 1000))
            counts = self._counters[key] = _Counts(window_ms)
        return counts

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._counters.pop(key, None)

    def _evict(self, now: int) -> None:
        """Drop counters two windows old; if every key is live, the oldest-created ones."""
        stale = [key for key, counts in self._counters.items()
                 if counts.last_window() < now // counts.window_ms - 1]
        self.forget(stale)
        while len(self._counters) >= self._max_keys:
            del self._counters[next(iter(self._counters))]


class RateLimiter:
    """``check(key, limit, window)`` on counts shared through Redis, or locally while it is down."""

    def __init__(self, kv: RedisConnection, *, max_age: float = 0.1,
                 fallback: SlidingWindow | None = None) -> None:
        self._kv = kv
        self.max_age = max_age
        """Seconds a key's totals from Redis are decided on before a request waits for new ones."""
        self._fallback = fallback if fallback is not None else SlidingWindow()
        self._offset = 0.0
        """Redis' clock minus this process's monotonic one, in seconds, as of the last exchange."""
        self._shared = SlidingWindow(clock=lambda: time.monotonic() + self._offset)
        self._dirty: dict[str, int] = {}
        """Key -> window ms, for keys with counts of this process Redis has not added yet."""
        self._wanted: dict[str, int] = {}
        """Key -> window ms, for keys a request waits to read."""
        self._next: asyncio.Future[bool] | None = None
        """Resolved by the exchange that starts next: True when it reached Redis."""
        self._exchange_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_exchange = -math.inf

    async def check(self, key: str, limit: int, window: float) -> Decision:
        """Count one request against ``key`` (at most ``limit`` per ``window`` seconds).

        ``key`` names who and what is limited, e.g. ``"ip:203.0.113.7:upload"``; it is
        stored as ``ratelimit:{key}`` in the deployment's namespace (``NVE_REDIS_PREFIX``),
        so callers never deal with the prefix.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        window_ms = max(1, round(window * 1000))
        shared = self._kv.available
        if shared:
            counts = self._shared.get(key)
            if counts is None or counts.window_ms != window_ms or \
                    counts.synced_at < time.monotonic() - self.max_age:
                self._wanted[key] = window_ms
                shared = await self.flush()
        if shared:
            allowed, retry_ms = self._shared.hit(key, limit, window_ms)
            if allowed:
                self._dirty[key] = window_ms
                self._schedule(at_once=False)
        else:
            allowed, retry_ms = self._fallback.hit(key, limit, window_ms)
        _DECIDED[allowed, shared].inc()
        return Decision(allowed, retry_ms / 1000)

    async def flush(self) -> bool:
        """Exchange counts with Redis now (after the exchange in flight, if any); whether it answered.

        Called by a node about to stop, its last counts are not lost.
        """
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        future = self._next
        self._schedule(at_once=True)
        # Shielded: a request cancelled while waiting must not cancel the others' wait.
        return await asyncio.shield(future)

    def _schedule(self, *, at_once: bool) -> None:
        if self._exchange_task is not None:
            return  # it goes on while someone waits, and sets the timer for what is left
        if at_once:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._exchange_task = asyncio.get_running_loop().create_task(self._exchanges())
        elif self._timer is None:
            delay = max(0.0, self._last_exchange + self.max_age / 2 - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._schedule_now)

    def _schedule_now(self) -> None:
        self._timer = None
        self._schedule(at_once=True)

    async def _exchanges(self) -> None:
        try:
            await self._exchange()
            while self._next is not None:
                await self._exchange()
        finally:
            self._exchange_task = None
        if self._dirty:
            self._schedule(at_once=False)

    async def _exchange(self) -> None:
        """Add this process's counts of every dirty or wanted key to Redis; read back the totals."""
        future, self._next = self._next, None
        keys = {**self._dirty, **self._wanted}
        self._dirty, self._wanted = {}, {}
        # The two newest windows (a clock offset that moved back can leave a third, pushed later).
        pushed = {key: sorted(counts.local.items())[-2:] if (counts := self._shared.get(key)) is not None
                  and counts.window_ms == window_ms else [] for key, window_ms in keys.items()}
        started = self._last_exchange = time.monotonic()
        reached = True
        try:
            names = list(keys)
            for first in range(0, len(names), _BATCH):
                batch = names[first:first + _BATCH]
                args: list[int] = []
                for key in batch:
                    pairs = pushed[key] + [(0, 0)] * (2 - len(pushed[key]))
                    args += [keys[key], *pairs[0], *pairs[1]]
                command = functools.partial(_evaluate, keys=[self._kv.key(f"ratelimit:{key}") for key in batch],
                                            args=args)
                self._apply(batch, keys, pushed, await self._kv.run(command), started)
        except KvUnavailable:
            # What they knew is too old to decide on, and what was not pushed goes with it.
            self._shared.forget(keys)
            reached = False
        except asyncio.CancelledError:
            if future is not None:
                future.cancel()
            raise
        except Exception as error:  # a bug, not an outage: the waiting requests fail with it
            if future is not None:
                future.set_exception(error)
            raise
        if future is not None:
            future.set_result(reached)

    def _apply(self, batch: list[str], windows: dict[str, int], pushed: dict[str, list[tuple[int, int]]],
               reply: list[int], started: float) -> None:
        now_ms = reply[0]
        self._offset = now_ms / 1000 - (started + time.monotonic()) / 2
        for i, key in enumerate(batch):
            counts = self._shared.counts(key, windows[key])
            counts.index, counts.current, counts.previous = now_ms // counts.window_ms, *reply[1 + 2 * i:3 + 2 * i]
            for at, n in pushed[key]:
                left = counts.local.get(at, 0) - n  # what was counted while the script ran stays
                if left > 0:
                    counts.local[at] = left
                else:
                    counts.local.pop(at, None)
            counts.synced_at = started


async def _evaluate(client: aioredis.Redis, keys: list[str], args: list[int]) -> list[int]:
    try:
        return cast("list[int]", await client.evalsha(_SHA, len(keys), *keys, *args))
    except NoScriptError:
        # First use on this server (or it restarted empty): EVAL also caches the script.
        return cast("list[int]", await client.eval(_LUA, len(keys), *keys, *args))

