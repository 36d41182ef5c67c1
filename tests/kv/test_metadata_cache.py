"""The metadata cache: read-through, TTL, single flight, invalidation, Redis down."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from core.kv.connection import RedisConnection
from core.kv.metadata_cache import MetadataCache
from core.registry import REGISTRY
from tests.conftest import RedisServer
from tests.kv.helpers import FakeClock


class CountingProbe:
    """A stand-in for core.media.probe: counts calls, answers after ``delay`` seconds.

    A ``gated`` probe waits until the test sets ``gate``; ``started`` is set once it is called.
    """

    def __init__(self, delay: float = 0.0, gated: bool = False) -> None:
        self.delay = delay
        self.calls = 0
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()

    async def __call__(self, path: Path) -> dict[str, Any]:
        self.calls += 1
        self.started.set()
        await self.gate.wait()
        await asyncio.sleep(self.delay)
        if not path.exists():
            raise FileNotFoundError(path)
        return {"duration": 4.0, "width": 320, "height": 240, "codec": "h264",
                "size": path.stat().st_size, "call": self.calls}


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(f"nve_metadata_cache_{name}_total") or 0.0


@pytest.fixture
def media(tmp_path: Path) -> Path:
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"x" * 10)
    return tmp_path


async def test_miss_probes_then_hits(kv: RedisConnection, media: Path) -> None:
    probe = CountingProbe()
    cache = MetadataCache(kv, media, probe)
    hits, misses = counter("hits"), counter("misses")
    first = await cache.get("a.mp4")
    assert first["codec"] == "h264" and probe.calls == 1
    assert await cache.get("a.mp4") == first
    assert await cache.get_json("a.mp4") == await kv.run(lambda r: r.get("metadata:a.mp4"))
    assert probe.calls == 1
    assert (counter("hits") - hits, counter("misses") - misses) == (2, 1)
    assert cache.hit_ratio() == pytest.approx(2 / 3)
    ttl = await kv.run(lambda r: r.ttl("metadata:a.mp4"))
    assert 3590 < ttl <= 3600


async def test_short_ttl_expires(kv: RedisConnection, media: Path) -> None:
    probe = CountingProbe()
    cache = MetadataCache(kv, media, probe, ttl=0.2)
    await cache.get("a.mp4")
    await cache.get("a.mp4")
    assert probe.calls == 1
    await asyncio.sleep(0.3)
    assert await kv.run(lambda r: r.exists("metadata:a.mp4")) == 0
    await cache.get("a.mp4")
    assert probe.calls == 2


async def test_stampede_of_100_misses_probes_once(kv: RedisConnection, media: Path) -> None:
    probe = CountingProbe(delay=0.05)
    cache = MetadataCache(kv, media, probe)
    coalesced = counter("coalesced")
    results = await asyncio.gather(*(cache.get("a.mp4") for _ in range(100)))
    assert probe.calls == 1
    assert all(result == results[0] for result in results)
    assert counter("coalesced") - coalesced == 99


async def test_lookups_of_one_loop_turn_share_one_mget(kv: RedisConnection, media: Path) -> None:
    names = [f"f{index}.mp4" for index in range(20)]
    cache = MetadataCache(kv, media, CountingProbe())
    for name in names:
        await cache.put(name, {"name": name})
    sent = REGISTRY.get_sample_value("nve_redis_commands_total", {"outcome": "ok"})
    results = await asyncio.gather(*(cache.get(name) for name in names))
    assert [result["name"] for result in results] == names
    assert REGISTRY.get_sample_value("nve_redis_commands_total", {"outcome": "ok"}) - sent == 1


async def test_stampede_with_a_sync_probe_in_an_executor(kv: RedisConnection, media: Path) -> None:
    calls = 0
    threads: set[str] = set()
    lock = threading.Lock()

    def probe(path: Path) -> dict[str, Any]:
        nonlocal calls
        with lock:
            calls += 1
        threads.add(threading.current_thread().name)
        threading.Event().wait(0.05)
        return {"duration": 1.0, "path": path.name}

    cache = MetadataCache(kv, media, probe)
    results = await asyncio.gather(*(cache.get("b.mp4") for _ in range(100)))
    assert calls == 1 and results[0] == {"duration": 1.0, "path": "b.mp4"}
    assert threading.main_thread().name not in threads, "the probe ran off the event loop"


async def test_probe_errors_reach_every_waiter_and_are_not_cached(
        kv: RedisConnection, media: Path) -> None:
    probe = CountingProbe(delay=0.02)
    cache = MetadataCache(kv, media, probe)
    results = await asyncio.gather(*(cache.get("gone.mp4") for _ in range(10)),
                                   return_exceptions=True)
    assert all(isinstance(result, FileNotFoundError) for result in results)
    assert probe.calls == 1
    assert await kv.run(lambda r: r.exists("metadata:gone.mp4")) == 0
    with pytest.raises(FileNotFoundError):
        await cache.get("gone.mp4")
    assert probe.calls == 2


async def test_a_cancelled_leader_does_not_cancel_the_flight(
        kv: RedisConnection, media: Path) -> None:
    probe = CountingProbe(gated=True)
    cache = MetadataCache(kv, media, probe)
    leader = asyncio.create_task(cache.get("a.mp4"))
    await probe.started.wait()
    follower = asyncio.create_task(cache.get("a.mp4"))
    await asyncio.sleep(0)  # the follower joins the flight
    leader.cancel()
    probe.gate.set()
    assert (await follower)["codec"] == "h264"
    assert probe.calls == 1


async def test_invalidate(kv: RedisConnection, media: Path) -> None:
    probe = CountingProbe()
    cache = MetadataCache(kv, media, probe)
    await cache.get("a.mp4")
    await cache.invalidate("a.mp4")
    assert await kv.run(lambda r: r.exists("metadata:a.mp4")) == 0
    assert (await cache.get("a.mp4"))["call"] == 2


async def test_invalidate_during_a_probe_keeps_the_stale_result_out(
        kv: RedisConnection, media: Path) -> None:
    probe = CountingProbe(gated=True)
    cache = MetadataCache(kv, media, probe)
    inflight = asyncio.create_task(cache.get("a.mp4"))
    await probe.started.wait()
    await cache.invalidate("a.mp4")  # the file was replaced while it was being probed
    probe.gate.set()
    await inflight
    assert await kv.run(lambda r: r.exists("metadata:a.mp4")) == 0


async def test_put_stores_metadata_probed_elsewhere(kv: RedisConnection, media: Path) -> None:
    probe = CountingProbe()
    cache = MetadataCache(kv, media, probe)
    await cache.put("a.mp4", {"duration": 9.5})
    assert await cache.get("a.mp4") == {"duration": 9.5}
    assert probe.calls == 0


async def test_redis_down_reads_use_the_local_copy(
        redis_server: RedisServer, kv: RedisConnection, media: Path) -> None:
    probe = CountingProbe()
    clock = FakeClock()
    cache = MetadataCache(kv, media, probe, ttl=60, clock=clock)
    await cache.get("a.mp4")
    redis_server.stop()
    hits = counter("hits")
    for _ in range(3):
        assert (await cache.get("a.mp4"))["codec"] == "h264"
    assert probe.calls == 1, "seen before the outage: served from this process"
    assert counter("hits") - hits == 3
    for _ in range(3):
        await cache.get("b.mp4")
    assert probe.calls == 2, "new during the outage: probed once, then served locally"
    await cache.invalidate("a.mp4")
    await cache.get("a.mp4")
    assert probe.calls == 3, "invalidation reaches the local copy"
    clock.advance(61)
    await cache.get("b.mp4")
    assert probe.calls == 4, "the local copy expires with the TTL"


async def test_local_copy_is_bounded(redis_server: RedisServer, kv: RedisConnection,
                                     media: Path) -> None:
    (media / "c.mp4").write_bytes(b"x")
    probe = CountingProbe()
    cache = MetadataCache(kv, media, probe, local_size=2)
    redis_server.stop()
    for name in ("a.mp4", "b.mp4", "c.mp4", "c.mp4", "b.mp4"):
        await cache.get(name)
    assert probe.calls == 3
    await cache.get("a.mp4")
    assert probe.calls == 4, "the least recently kept entry made room"


async def test_hit_ratio_is_over_the_recent_window(kv: RedisConnection, media: Path) -> None:
    cache = MetadataCache(kv, media, CountingProbe(), window=10)
    assert cache.hit_ratio() is None
    await cache.get("a.mp4")
    assert cache.hit_ratio() == 0.0
    for _ in range(10):
        await cache.get("a.mp4")
    assert cache.hit_ratio() == 1.0, "the first miss has left the window"


def redis_commands() -> float:
    return REGISTRY.get_sample_value("nve_redis_commands_total", {"outcome": "ok"}) or 0.0


def replace(path: Path, content: bytes) -> None:
    """What another node's upload under ``path``'s name does: write aside, rename over it."""
    aside = path.with_name(f"{path.name}.new")
    aside.write_bytes(content)
    aside.replace(path)


async def test_a_hit_is_served_here_until_the_recheck(kv: RedisConnection, media: Path) -> None:
    clock = FakeClock()
    cache = MetadataCache(kv, media, CountingProbe(), recheck=1.0, clock=clock)
    first = await cache.get_json("a.mp4")
    sent, hits = redis_commands(), counter("hits")
    for _ in range(5):
        assert await cache.get_json("a.mp4") == first
    assert (redis_commands() - sent, counter("hits") - hits) == (0, 5), "no Redis round trip"
    clock.advance(1.0)
    assert await cache.get_json("a.mp4") == first
    assert redis_commands() - sent == 1, "Redis confirms the copy once the recheck is due"


async def test_copies_kept_apart_fall_due_together(kv: RedisConnection, media: Path) -> None:
    clock = FakeClock(1000.2)
    cache = MetadataCache(kv, media, CountingProbe(), recheck=1.0, clock=clock)
    await cache.get_json("a.mp4")
    clock.advance(0.5)
    await cache.get_json("b.mp4")
    clock.advance(0.35)  # 1001.05: both kept in the period that just ended
    sent = redis_commands()
    await asyncio.gather(cache.get_json("a.mp4"), cache.get_json("b.mp4"))
    assert redis_commands() - sent == 1, "both confirmed by one MGET"


async def test_a_file_replaced_on_another_node_is_described_anew(kv: RedisConnection, media: Path) -> None:
    probe = CountingProbe()
    here = MetadataCache(kv, media, probe, clock=FakeClock())
    other = MetadataCache(kv, media, probe)
    assert (await here.get("a.mp4"))["size"] == 10
    replace(media / "a.mp4", b"y" * 20)
    await other.invalidate("a.mp4")
    assert (await here.get("a.mp4"))["size"] == 20, "not this node's copy of the old file"
    assert probe.calls == 2


async def test_a_deleted_file_is_not_served_from_the_copy(kv: RedisConnection, media: Path) -> None:
    probe = CountingProbe()
    here = MetadataCache(kv, media, probe, clock=FakeClock())
    await here.get("a.mp4")
    (media / "a.mp4").unlink()
    await MetadataCache(kv, media, probe).invalidate("a.mp4")  # another node deleted it
    with pytest.raises(FileNotFoundError):
        await here.get("a.mp4")


async def test_an_invalidation_on_another_node_arrives_within_the_recheck(
        kv: RedisConnection, media: Path) -> None:
    probe = CountingProbe()
    clock = FakeClock()
    here = MetadataCache(kv, media, probe, recheck=1.0, clock=clock)
    await here.get("a.mp4")
    await MetadataCache(kv, media, probe).invalidate("a.mp4")
    clock.advance(1.0)
    assert (await here.get("a.mp4"))["call"] == 2


async def test_a_pending_preview_is_read_from_redis_every_time(kv: RedisConnection, media: Path) -> None:
    async def probe(path: Path) -> dict[str, Any]:
        return {"duration": 1.0, "preview": {"status": "pending", "url": "/p", "operationId": "ingest-a"}}

    here = MetadataCache(kv, media, probe, clock=FakeClock())
    assert (await here.get("a.mp4"))["preview"]["status"] == "pending"
    sent = redis_commands()
    await here.get("a.mp4")
    assert redis_commands() - sent == 1
    ready = {"duration": 1.0, "preview": {"status": "ready", "url": "/p", "operationId": "ingest-a"}}
    await MetadataCache(kv, media, probe).put("a.mp4", ready)  # another node saw the proxy made
    assert await here.get("a.mp4") == ready
