"""Redis killed and started again while clients keep using sessions, metadata and rate-limited writes.

tests/kv covers each fallback on its own, with Redis gone while nothing runs. Here the
kill lands under load, and Redis comes back from its last snapshot, as a Redis with
persistence does: it then holds sessions as they were before the outage. Every client
reads its own writes throughout (a session change acknowledged while Redis was down is
not undone by the old copy coming back), metadata is answered all along, rate limiting
is decided in-process meanwhile and in Redis again afterwards.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from core.registry import REGISTRY
from tests.conftest import RedisServer

CLIENTS = 6


def decisions(backend: str) -> float:
    """Rate-limit decisions taken so far in Redis or in this process (the server runs in it)."""
    return sum(REGISTRY.get_sample_value("nve_ratelimit_decisions_total", {"result": result, "backend": backend})
               or 0.0 for result in ("allowed", "limited"))


def change(serial: int) -> dict[str, Any]:
    """The settings change of round ``serial``: one field, a value no other round of the client sets."""
    return [{"volume": serial / 10_000}, {"timelineZoom": 1 + serial / 100},
            {"theme": ("light", "dark", "system")[serial % 3]}, {"muted": serial % 2 == 0}][serial % 4]


class SessionClient:
    """A browser tab: reads its session, changes a setting, asks for a file's metadata; again and again.

    It knows what its session must hold (every acknowledged change applied), so it notices
    a read that is behind, and a change applied to a stale copy (which undoes earlier ones).
    """

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10)
        self.session_id = ""
        self.expected: dict[str, Any] = {}
        self.rounds: list[int] = []
        """The load clock at the start of each finished round."""
        self.problems: list[str] = []

    async def run(self, clock: list[int], stop: asyncio.Event) -> None:
        first = await self.http.get("/api/session")
        self.session_id = first.cookies["nve_session"]
        self.expected = first.json()
        jar = {"cookie": f"nve_session={self.session_id}"}
        serial = 0
        while not stop.is_set() and not self.problems:
            serial += 1
            started = clock[0]
            read = await self.http.get("/api/session", headers=jar)
            if read.status_code != 200 or read.json() != self.expected:
                self.problems.append(f"round {serial} (clock {started}): read {read.status_code} {read.text}, "
                                     f"expected {self.expected}")
            patch = change(serial)
            self.expected = {**self.expected, "settings": {**self.expected["settings"], **patch}}
            changed = await self.http.put("/api/session/settings", json=patch, headers=jar)
            if changed.status_code != 200 or changed.json() != self.expected:
                self.problems.append(f"round {serial} (clock {started}): PUT {patch} answered {changed.status_code} "
                                     f"{changed.text[:300]}, expected {self.expected}")
            metadata = await self.http.get("/api/metadata/clip.mp4")
            if metadata.status_code != 200 or metadata.json()["width"] != 320:
                self.problems.append(f"metadata: {metadata.status_code} {metadata.text[:200]}")
            self.rounds.append(started)


async def redis_command(url: str, command: str, *args: str) -> Any:
    """One command on a fresh connection (a pooled one would not survive the restart)."""
    async with aioredis.from_url(url) as client:
        return await client.execute_command(command, *args)


async def test_a_redis_restart_under_load_loses_no_session_change(
        kv_server_factory: Any, redis_server: RedisServer) -> None:
    server = await kv_server_factory(rate_limit_writes=10**6, rate_limit_window=60.0)
    kv = server.app.kv.connection
    clock, stop = [0], asyncio.Event()
    clients = [SessionClient(f"http://127.0.0.1:{server.port}") for _ in range(CLIENTS)]
    tasks = [asyncio.create_task(client.run(clock, stop)) for client in clients]

    async def rounds_since(tick: int, count: int) -> None:
        deadline = asyncio.get_running_loop().time() + 30  # generous: only a broken fallback waits it out
        while not all(sum(r >= tick for r in client.rounds) >= count for client in clients):
            problems = [problem for client in clients for problem in client.problems]
            assert not problems, problems
            assert asyncio.get_running_loop().time() < deadline, [len(c.rounds) for c in clients]
            await asyncio.sleep(0.02)

    try:
        await rounds_since(0, 3)
        await redis_command(redis_server.url, "SAVE")  # what Redis will come back with
        clock[0] += 1
        await rounds_since(clock[0], 3)  # every session has moved on since the snapshot

        redis_server.stop()
        clock[0] += 1
        local_before = decisions("local")
        await rounds_since(clock[0], 5)
        assert not kv.available
        assert decisions("local") - local_before >= CLIENTS * 5, "rate limits decided in-process"

        redis_server.start()  # loads the snapshot: every session as it was before the kill
        deadline = asyncio.get_running_loop().time() + 10
        while not kv.available:  # the breaker's probe finds it within its 2 s backoff
            assert asyncio.get_running_loop().time() < deadline, kv.breaker.state
            await asyncio.sleep(0.02)
        clock[0] += 1
        redis_before = decisions("redis")
        await rounds_since(clock[0], 5)
        assert decisions("redis") - redis_before >= CLIENTS * 5, "rate limits decided in Redis again"

        stop.set()
        await asyncio.gather(*tasks)
        for client in clients:  # Redis serves the sessions as they are now, not as the snapshot had them
            stored = await redis_command(redis_server.url, "GET", f"session:{client.session_id}")
            assert stored is not None and json.loads(stored) == client.expected
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for client in clients:
            await client.http.aclose()
        try:
            await redis_command(redis_server.url, "PING")
        except RedisConnectionError:  # the test failed while Redis was down
            redis_server.start()
        await redis_command(redis_server.url, "FLUSHALL")
        await redis_command(redis_server.url, "SAVE")  # leave no snapshot behind for the next test that restarts Redis
    assert not [problem for client in clients for problem in client.problems]
