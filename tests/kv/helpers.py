"""What the kv tests share: waiting for a breaker to settle, and a manual clock."""

from __future__ import annotations

import asyncio
import time

from core.kv.connection import RedisConnection


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def wait_until_available(kv: RedisConnection, timeout: float = 5.0) -> None:
    """Let the background probe notice a restarted Redis (backoff is at most 2 s)."""
    deadline = time.monotonic() + timeout
    while not kv.available:
        if time.monotonic() > deadline:
            raise AssertionError(f"breaker still {kv.breaker.state} after {timeout} s")
        await asyncio.sleep(0.02)
