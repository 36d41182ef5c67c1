"""NVE_REDIS_PREFIX: deployments sharing one Redis keep apart; without it, the contract's names."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from core.db.migrations import migrate
from core.db.pool import Database
from core.kv.connection import RedisConnection
from core.kv.services import KvServices
from server.ws.hub import Hub, create_hub
from server.ws.settings import WsSettings
from tests.conftest import throwaway_database
from tests.ws.fakes import connect, progress


@dataclass
class Deployment:
    """What one deployment keeps in Redis: its KV services and its WebSocket hub."""

    kv: KvServices
    hub: Hub
    probed: list[str]


Deploy = Callable[[str], Awaitable[Deployment]]
StartHub = Callable[[str], Awaitable[Hub]]


@pytest.fixture
async def start_hub(redis_url: str) -> AsyncIterator[StartHub]:
    """``await start_hub(prefix)``: a deployment's WebSocket hub on the shared Redis, built
    from its settings as the server builds it."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(prefix: str) -> Hub:
            settings = Settings(redis_url=redis_url, redis_prefix=prefix)
            hub = create_hub(WsSettings.from_settings(settings), settings.redis_url)
            await hub.start()
            stack.push_async_callback(hub.close, timeout=0)
            return hub

        yield start


@pytest.fixture
async def deploy(migrated_dsn: str, redis_url: str, tmp_path: Path, start_hub: StartHub) -> AsyncIterator[Deploy]:
    """``await deploy(prefix)``: a deployment on the shared Redis with a database of its own
    (the first gets the test's database), built from its settings as the server builds it."""
    started: list[Deployment] = []
    async with contextlib.AsyncExitStack() as stack:

        async def start(prefix: str) -> Deployment:
            dsn = migrated_dsn
            if started:
                dsn = await stack.enter_async_context(throwaway_database())
                await migrate(dsn)
            settings = Settings(redis_url=redis_url, redis_prefix=prefix)
            db = Database(dsn)
            await db.open()
            stack.push_async_callback(db.close)
            probed: list[str] = []

            async def probe(path: Path) -> dict[str, Any]:
                probed.append(path.name)
                return {"duration": 1.0, "deployment": prefix}

            kv = KvServices(settings.redis_url, db, tmp_path, probe, key_prefix=settings.redis_prefix)
            stack.push_async_callback(kv.close)
            started.append(Deployment(kv, await start_hub(prefix), probed))
            return started[-1]

        yield start


async def redis_keys(redis_url: str) -> set[str]:
    raw = RedisConnection(redis_url)
    try:
        keys = await raw.run(lambda r: r.keys("*"))
        return {key.decode() if isinstance(key, bytes) else key for key in keys}
    finally:
        await raw.close()


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


async def test_prefixed_deployments_share_nothing(deploy: Deploy, redis_url: str) -> None:
    blue, green = await deploy("blue:"), await deploy("green:")

    session = await blue.kv.sessions.open(None)
    assert await blue.kv.sessions.find(session.id) == session.id
    assert await green.kv.sessions.find(session.id) is None

    assert (await blue.kv.metadata.get("clip.mp4"))["deployment"] == "blue:"
    assert (await green.kv.metadata.get("clip.mp4"))["deployment"] == "green:"
    assert (await blue.kv.metadata.get("clip.mp4"))["deployment"] == "blue:"  # its own cache entry
    assert (blue.probed, green.probed) == (["clip.mp4"], ["clip.mp4"])

    for _ in range(2):
        assert (await blue.kv.limiter.check("ip:192.0.2.1:write", 2, 60)).allowed
    assert not (await blue.kv.limiter.check("ip:192.0.2.1:write", 2, 60)).allowed
    assert (await green.kv.limiter.check("ip:192.0.2.1:write", 2, 60)).allowed

    assert blue.kv.connection.available and green.kv.connection.available  # all of it went through Redis
    keys = await redis_keys(redis_url)
    assert f"blue:session:{session.id}" in keys and "green:metadata:clip.mp4" in keys
    assert all(key.startswith(("blue:", "green:")) for key in keys), keys


async def test_bus_messages_stay_within_their_prefix(start_hub: StartHub, redis_url: str) -> None:
    blue, other_blue, green = await start_hub("blue:"), await start_hub("blue:"), await start_hub("green:")
    _, on_blue = connect(other_blue)
    _, on_green = connect(green)
    await blue.publish("progress", progress("op-1", 10))
    await green.publish("progress", progress("op-2", 20))
    await eventually(lambda: ("progress", 10) in on_blue.jobs())
    await asyncio.sleep(0.2)  # time enough for a stray message to arrive
    assert on_blue.jobs() == [("progress", 10)]
    assert on_green.jobs() == [("progress", 20)]  # its own, delivered locally
    keys = await redis_keys(redis_url)
    assert {"blue:nve:ws:recent", "green:nve:ws:recent"} <= keys
    assert all(key.startswith(("blue:", "green:")) for key in keys), keys


async def test_without_a_prefix_the_names_are_the_contracts(deploy: Deploy, redis_url: str) -> None:
    plain = await deploy(Settings.from_env({}).redis_prefix)
    session = await plain.kv.sessions.open(None)
    await plain.kv.metadata.get("clip.mp4")
    await plain.kv.limiter.check("ip:192.0.2.1:write", 5, 60)
    await plain.hub.publish("progress", progress("op-1", 10))
    await eventually(lambda: plain.hub.bus._pending.nbytes == 0)  # type: ignore[attr-defined]
    keys = await redis_keys(redis_url)
    assert {f"session:{session.id}", "metadata:clip.mp4", "ratelimit:ip:192.0.2.1:write",
            "nve:ws:recent"} <= keys
    assert all(key.startswith(("session:", "metadata:", "ratelimit:", "nve:ws:")) for key in keys), keys
    raw = RedisConnection(redis_url)
    try:
        assert b"nve:ws" in await raw.run(lambda r: r.pubsub_channels())
    finally:
        await raw.close()
