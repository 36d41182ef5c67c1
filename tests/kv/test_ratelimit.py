"""The rate limiter in Redis (Lua) and in its in-process fallback."""

from __future__ import annotations

import asyncio

import pytest

from core.kv.connection import RedisConnection
from core.kv.ratelimit import Decision, RateLimiter, SlidingWindow
from tests.conftest import RedisServer
from tests.kv.helpers import FakeClock, wait_until_available


async def exhaust(limiter: RateLimiter, key: str, limit: int, window: float) -> Decision:
    """Spend the whole limit, check every request got in, return the next decision."""
    for _ in range(limit):
        allowed, retry_after = await limiter.check(key, limit, window)
        assert allowed and retry_after == 0
    return await limiter.check(key, limit, window)


async def test_redis_limits_and_lets_in_again(kv: RedisConnection) -> None:
    limiter = RateLimiter(kv)
    denied = await exhaust(limiter, "ip:192.0.2.1:upload", 5, 0.5)
    assert not denied.allowed
    assert 0 < denied.retry_after <= 1.0
    assert denied.retry_after_header == "1"
    assert (await limiter.check("ip:192.0.2.2:upload", 5, 0.5)).allowed, "keys are separate"
    assert await kv.run(lambda r: r.exists("ratelimit:ip:192.0.2.1:upload")) == 1
    await asyncio.sleep(denied.retry_after + 0.05)
    assert (await limiter.check("ip:192.0.2.1:upload", 5, 0.5)).allowed


async def test_redis_is_atomic_under_concurrency(kv: RedisConnection) -> None:
    limiter = RateLimiter(kv)
    # Open the connections first: 100 connects at once on a busy machine can outlast the
    # socket timeout, and a timed-out check rightly falls back to the local counter.
    await asyncio.gather(*(kv.run(lambda r: r.ping()) for _ in range(100)))
    decisions = await asyncio.gather(*(limiter.check("burst", 20, 10) for _ in range(100)))
    assert sum(decision.allowed for decision in decisions) == 20
    assert await kv.run(lambda r: r.hget("ratelimit:burst", "c")) == b"20"


async def test_limits_are_shared_through_redis(kv: RedisConnection, redis_url: str) -> None:
    other_node = RedisConnection(redis_url)
    try:
        await exhaust(RateLimiter(kv), "shared", 3, 10)
        assert not (await RateLimiter(other_node).check("shared", 3, 10)).allowed
    finally:
        await other_node.close()


async def test_fallback_while_redis_is_down(redis_server: RedisServer,
                                            kv: RedisConnection) -> None:
    limiter = RateLimiter(kv)
    redis_server.stop()
    denied = await exhaust(limiter, "ip:192.0.2.9:write", 4, 0.5)
    assert not denied.allowed and 0 < denied.retry_after <= 1.0
    redis_server.start()
    await wait_until_available(kv)
    assert (await limiter.check("ip:192.0.2.9:write", 4, 0.5)).allowed, "Redis counts anew"


def test_sliding_window_weighs_the_previous_window() -> None:
    clock = FakeClock(start=100.0)  # exactly at a window boundary for 1 s windows
    window = SlidingWindow(clock=clock)
    for _ in range(10):
        assert window.hit("k", 10, 1000)[0]
    assert window.hit("k", 10, 1000) == (False, 1100), "full: until the old count weighs 9"
    clock.advance(1.0)  # previous = 10, weight 1 at the start of the new window
    assert window.hit("k", 10, 1000) == (False, 100)
    clock.advance(0.5)  # weight 0.5: room for 5
    assert [window.hit("k", 10, 1000)[0] for _ in range(6)] == [True] * 5 + [False]
    clock.advance(1.6)  # two windows later everything is forgotten
    assert [window.hit("k", 10, 1000)[0] for _ in range(10)] == [True] * 10


def test_sliding_window_evicts_beyond_max_keys() -> None:
    clock = FakeClock()
    window = SlidingWindow(max_keys=3, clock=clock)
    for key in "abc":
        window.hit(key, 1, 1000)
    window.hit("d", 1, 1000)
    assert window.hit("d", 1, 1000)[0] is False
    assert window.hit("a", 1, 1000)[0] is True, "the oldest key made room"


async def test_bad_limit_is_rejected(kv: RedisConnection) -> None:
    with pytest.raises(ValueError):
        await RateLimiter(kv).check("k", 0, 1)
