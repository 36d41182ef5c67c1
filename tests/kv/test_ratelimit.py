"""The rate limiter: decided in-process on counts shared through Redis (one node alone exact,
several within the bound core/kv/ratelimit.py documents), and its fallback while Redis is down."""

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


async def test_one_node_alone_is_exact_under_concurrency(kv: RedisConnection) -> None:
    limiter = RateLimiter(kv)
    # Open the connections first: 100 connects at once on a busy machine can outlast the
    # socket timeout, and a timed-out check rightly falls back to the local counter.
    await asyncio.gather(*(kv.run(lambda r: r.ping()) for _ in range(100)))
    decisions = await asyncio.gather(*(limiter.check("burst", 20, 10) for _ in range(100)))
    assert sum(decision.allowed for decision in decisions) == 20
    assert await limiter.flush()
    assert await kv.run(lambda r: r.hget("ratelimit:burst", "c")) == b"20"


async def test_limits_are_shared_through_redis(kv: RedisConnection, redis_url: str) -> None:
    other_node = RedisConnection(redis_url)
    try:
        first = RateLimiter(kv)
        await exhaust(first, "shared", 3, 10)
        await first.flush()
        assert not (await RateLimiter(other_node).check("shared", 3, 10)).allowed
    finally:
        await other_node.close()


async def test_counts_reach_redis_without_being_asked(kv: RedisConnection) -> None:
    limiter = RateLimiter(kv, max_age=0.05)
    for _ in range(3):
        assert (await limiter.check("pushed", 10, 10)).allowed
    deadline = asyncio.get_running_loop().time() + 5
    while await kv.run(lambda r: r.hget("ratelimit:pushed", "c")) != b"3":
        assert asyncio.get_running_loop().time() < deadline, "the node never pushed its counts"
        await asyncio.sleep(0.01)


async def redis_calls(kv: RedisConnection) -> int:
    stats = await kv.run(lambda r: r.info("commandstats"))
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("eval", "evalsha"))


async def test_a_key_in_use_is_decided_without_redis(kv: RedisConnection) -> None:
    limiter = RateLimiter(kv, max_age=60)
    before = await redis_calls(kv)
    decisions = [await limiter.check("busy", 30, 10) for _ in range(40)]
    assert [decision.allowed for decision in decisions] == [True] * 30 + [False] * 10
    assert await redis_calls(kv) - before == 1, "one read of the key, then nothing until the push"


async def test_two_nodes_overshoot_by_what_the_other_counted_since_the_last_read(
        kv: RedisConnection, redis_url: str) -> None:
    """The module docstring's bound, step by step: each node is exact about its own requests and
    decides on the totals of its last exchange; what another node counted after it is missed."""
    other_connection = RedisConnection(redis_url)
    try:
        a, b = RateLimiter(kv, max_age=60), RateLimiter(other_connection, max_age=60)
        assert all([(await a.check("k", 10, 10)).allowed for _ in range(4)])
        await a.flush()
        b_admits = [(await b.check("k", 10, 10)).allowed for _ in range(8)]
        assert b_admits == [True] * 6 + [False] * 2, "b read a's 4 on its first request"
        await b.flush()
        a_admits = [(await a.check("k", 10, 10)).allowed for _ in range(8)]
        assert a_admits == [True] * 6 + [False] * 2, "a still decides on the 4 it read: b's 6 are the overshoot"
        await a.flush()
        assert await kv.run(lambda r: r.hget("ratelimit:k", "c")) == b"16"
        a.max_age = b.max_age = 0  # totals older than max_age are read again before deciding
        assert not (await a.check("k", 10, 10)).allowed and not (await b.check("k", 10, 10)).allowed
    finally:
        await other_connection.close()


async def test_totals_older_than_max_age_are_read_again(kv: RedisConnection, redis_url: str) -> None:
    other_connection = RedisConnection(redis_url)
    try:
        a, b = RateLimiter(kv, max_age=0.05), RateLimiter(other_connection)
        assert (await a.check("k", 5, 10)).allowed
        await a.flush()
        assert [(await b.check("k", 5, 10)).allowed for _ in range(5)] == [True] * 4 + [False]
        await b.flush()
        await asyncio.sleep(0.06)
        assert not (await a.check("k", 5, 10)).allowed, "a read b's counts before deciding"
    finally:
        await other_connection.close()


async def test_fallback_while_redis_is_down(redis_server: RedisServer,
                                            kv: RedisConnection) -> None:
    limiter = RateLimiter(kv)
    redis_server.stop()
    denied = await exhaust(limiter, "ip:192.0.2.9:write", 4, 0.5)
    assert not denied.allowed and 0 < denied.retry_after <= 1.0
    redis_server.start()
    await wait_until_available(kv)
    assert (await limiter.check("ip:192.0.2.9:write", 4, 0.5)).allowed, "Redis counts anew"


async def test_a_request_cancelled_while_waiting_leaves_the_others_waiting(kv: RedisConnection) -> None:
    limiter = RateLimiter(kv)
    gone = asyncio.ensure_future(limiter.check("k", 5, 10))
    stays = asyncio.ensure_future(limiter.check("k", 5, 10))
    await asyncio.sleep(0)  # both wait for the same exchange
    gone.cancel()
    assert (await stays).allowed
    assert gone.cancelled()


async def test_an_exchange_that_fails_leaves_the_decision_to_the_fallback(
        redis_server: RedisServer, kv: RedisConnection) -> None:
    limiter = RateLimiter(kv, max_age=0)  # every check reads Redis again
    assert (await limiter.check("ip:192.0.2.8:write", 2, 10)).allowed
    redis_server.stop()
    decisions = [await limiter.check("ip:192.0.2.8:write", 2, 10) for _ in range(3)]
    assert [decision.allowed for decision in decisions] == [True, True, False], \
        "the fallback counts on its own (the unpushed count went with the exchange)"
    redis_server.start()
    await wait_until_available(kv)
    assert (await limiter.check("ip:192.0.2.8:write", 2, 10)).allowed


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
