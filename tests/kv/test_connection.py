"""RedisConnection against a real, private Redis that the tests kill and restart."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.kv.breaker import BreakerState
from core.kv.connection import KvUnavailable, RedisConnection
from core.registry import REGISTRY
from tests.conftest import RedisServer, free_port
from tests.kv.helpers import wait_until_available


def commands(outcome: str) -> float:
    return REGISTRY.get_sample_value("nve_redis_commands_total", {"outcome": outcome}) or 0.0


async def test_commands_round_trip(kv: RedisConnection) -> None:
    assert await kv.run(lambda r: r.set("k", "v", px=10_000))
    assert await kv.run(lambda r: r.get("k")) == b"v"
    assert await kv.ping()


async def test_starts_without_redis_and_fails_fast() -> None:
    kv = RedisConnection(f"redis://127.0.0.1:{free_port()}/0")
    try:
        started = time.perf_counter()
        with pytest.raises(KvUnavailable):
            await kv.run(lambda r: r.get("k"))
        assert kv.breaker.state is BreakerState.OPEN
        rejected, failed = commands("rejected"), commands("failed")
        for _ in range(100):
            with pytest.raises(KvUnavailable):
                await kv.run(lambda r: r.get("k"))
        assert time.perf_counter() - started < 1.0
        assert commands("rejected") - rejected == 100
        assert commands("failed") == failed, "no call touched Redis while the breaker was open"
        assert not await kv.ping()
    finally:
        await kv.close()


async def test_at_most_three_retries_per_command() -> None:
    kv = RedisConnection(f"redis://127.0.0.1:{free_port()}/0", failure_threshold=100)
    calls = 0

    def command(r):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return r.get("k")

    try:
        with pytest.raises(KvUnavailable):
            await kv.run(command)
        assert calls == 4, "one try and three retries"
    finally:
        await kv.close()


async def test_command_errors_are_not_outages(kv: RedisConnection) -> None:
    from redis.exceptions import ResponseError

    await kv.run(lambda r: r.set("k", "not a list"))
    with pytest.raises(ResponseError):
        await kv.run(lambda r: r.lpush("k", 1))
    assert kv.breaker.state is BreakerState.CLOSED


async def test_killed_redis_then_back(redis_server: RedisServer, kv: RedisConnection) -> None:
    await kv.run(lambda r: r.set("k", "v"))
    redis_server.stop()
    with pytest.raises(KvUnavailable):
        for _ in range(5):
            await kv.run(lambda r: r.get("k"))
    assert not kv.available
    await asyncio.sleep(0.3)  # several failed probes: the backoff has grown
    assert kv.breaker.failed_attempts > 1
    redis_server.start()
    await wait_until_available(kv)
    assert await kv.run(lambda r: r.set("k", "again")) is True
    assert await kv.run(lambda r: r.get("k")) == b"again"
