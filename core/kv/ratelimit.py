"""Rate limiting: a sliding-window counter, atomic in Redis, in-process while Redis is down.

The sliding-window counter (the estimate ``previous * (1 - elapsed / window) + current``
over two fixed windows) smooths the double burst a plain fixed window allows at its edges
and costs one small hash per key. In Redis the whole decision is one Lua script, so
concurrent requests on several nodes cannot overshoot; it reads Redis' clock, so nodes need
not agree on the time. While Redis is unavailable the same arithmetic runs on a dict in
this process (each node then counts on its own, so a client may get one limit's worth per
node: fail open a little rather than refuse everyone or wait on Redis).

Denied requests are not counted, so a client that keeps knocking is let in again as soon as
its window allows. ``retry_after`` is exact to the millisecond; ``Retry-After`` wants whole
seconds, see :attr:`Decision.retry_after_header`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import NamedTuple, cast

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import NoScriptError

from core.kv.connection import KvUnavailable, RedisConnection
from core.registry import REGISTRY

DECISIONS = Counter(
    "nve_ratelimit_decisions", "Rate-limit decisions by result (allowed, limited) and where "
    "they were taken (redis, local).", ["result", "backend"], registry=REGISTRY,
)

# KEYS[1] = the counter's hash; ARGV = limit, window in ms. Returns {allowed, retry_after_ms}.
# Fields: w = index of the current window, c = its count, p = the previous window's count.
_LUA = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idx = math.floor(now / window)
local s = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w = tonumber(s[1])
local c = tonumber(s[2]) or 0
local p = tonumber(s[3]) or 0
if w ~= idx then
  if w == idx - 1 then p = c else p = 0 end
  c = 0
end
local elapsed = now - idx * window
if p * (window - elapsed) / window + c + 1 <= limit then
  redis.call('HSET', KEYS[1], 'w', idx, 'c', c + 1, 'p', p)
  redis.call('PEXPIRE', KEYS[1], 2 * window)
  return {1, 0}
end
local wait
if c + 1 <= limit then
  wait = window - elapsed - (limit - 1 - c) * window / p
else
  wait = window - elapsed + window * (1 - (limit - 1) / c)
end
return {0, math.ceil(wait)}
"""
_SHA = hashlib.sha1(_LUA.encode()).hexdigest()


class Decision(NamedTuple):
    """Unpacks as ``(allowed, retry_after_s)``; ``retry_after`` is 0 when allowed."""

    allowed: bool
    retry_after: float

    @property
    def retry_after_header(self) -> str:
        """The ``Retry-After`` value: whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class SlidingWindow:
    """The same sliding-window counter as the Lua script, held in this process."""

    def __init__(self, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._max_keys = max_keys
        # key -> [window index, current count, previous count, window ms]
        self._counters: dict[str, list[int]] = {}

    def hit(self, key: str, limit: int, window_ms: int) -> tuple[bool, int]:
        """Count one request on ``key`` if allowed; (allowed, retry after in ms)."""
        now = int(self._clock() * 1000)
        idx = now // window_ms
        w, c, p, _ = self._counters.get(key) or (None, 0, 0, window_ms)
        if w != idx:
            p = c if w == idx - 1 else 0
            c = 0
        elapsed = now - idx * window_ms
        if p * (window_ms - elapsed) / window_ms + c + 1 <= limit:
            if key not in self._counters and len(self._counters) >= self._max_keys:
                self._evict(now)
            self._counters[key] = [idx, c + 1, p, window_ms]
            return True, 0
        if c + 1 <= limit:
            wait = window_ms - elapsed - (limit - 1 - c) * window_ms / p
        else:
            wait = window_ms - elapsed + window_ms * (1 - (limit - 1) / c)
        return False, math.ceil(wait)

    def _evict(self, now: int) -> None:
        """Drop counters two windows old; if every key is live, the oldest-created ones."""
        stale = [key for key, (w, _, _, window) in self._counters.items() if w < now // window - 1]
        for key in stale:
            del self._counters[key]
        while len(self._counters) >= self._max_keys:
            del self._counters[next(iter(self._counters))]


class RateLimiter:
    """``check(key, limit, window)`` against Redis, or the local fallback while it is down."""

    def __init__(self, kv: RedisConnection, *, fallback: SlidingWindow | None = None) -> None:
        self._kv = kv
        self._fallback = fallback if fallback is not None else SlidingWindow()

    async def check(self, key: str, limit: int, window: float) -> Decision:
        """Count one request against ``key`` (at most ``limit`` per ``window`` seconds).

        ``key`` names who and what is limited, e.g. ``"ip:203.0.113.7:upload"``; it is
        stored as ``ratelimit:{key}`` in the deployment's namespace (``NVE_REDIS_PREFIX``),
        so callers never deal with the prefix.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        window_ms = max(1, round(window * 1000))
        redis_key = self._kv.key(f"ratelimit:{key}")
        try:
            allowed, retry_ms = await self._kv.run(
                lambda client: _evaluate(client, redis_key, limit, window_ms))
            backend = "redis"
        except KvUnavailable:
            allowed, retry_ms = self._fallback.hit(key, limit, window_ms)
            backend = "local"
        DECISIONS.labels("allowed" if allowed else "limited", backend).inc()
        return Decision(bool(allowed), retry_ms / 1000)


async def _evaluate(client: aioredis.Redis, key: str, limit: int, window_ms: int) -> list[int]:
    try:
        return cast("list[int]", await client.evalsha(_SHA, 1, key, limit, window_ms))
    except NoScriptError:
        # First use on this server (or it restarted empty): EVAL also caches the script.
        return cast("list[int]", await client.eval(_LUA, 1, key, limit, window_ms))
