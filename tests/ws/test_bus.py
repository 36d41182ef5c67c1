"""Hubs on different nodes sharing one real Redis: delivery, outages, latest state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from core.access.owners import LOCAL
from server.ws.bus import RedisBus, create_redis
from server.ws.hub import Hub, create_hub
from server.ws.latest import latest_key, operation_key, recent_key
from server.ws.messages import unpack
from server.ws.settings import WsSettings
from tests.ws.fakes import connect, flushed, send


async def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``condition()`` holds (a deadline against hangs, not a speed assertion)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.01)


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[Callable[[], Hub]]:
    started: list[Hub] = []

    async def start() -> Hub:
        hub = create_hub(WsSettings(channel="nve:test"), redis_url)
        await hub.start()
        assert isinstance(hub.bus, RedisBus) and hub.bus.state == "up"
        started.append(hub)
        return hub

    yield start  # type: ignore[misc]
    for hub in started:
        await hub.close(timeout=0)


def progress(op: str, value: float) -> dict[str, object]:
    return {"operationId": op, "operation": "process", "progress": value}


async def test_message_published_on_one_node_reaches_clients_of_the_other(nodes) -> None:
    a, b = await nodes(), await nodes()
    _, on_a = connect(a)
    _, on_b = connect(b)
    await a.publish("progress", progress("p-1", 10))
    await b.publish("progress", progress("p-2", 20))
    await a.publish("complete", {"operationId": "p-1", "result": {"filename": "x.mp4", "url": "/videos/x.mp4"}})
    await eventually(lambda: len(on_b.jobs()) == 3 and len(on_a.jobs()) == 3)
    # b's own message is delivered locally at once, a's come through Redis in order.
    assert on_b.jobs() == [("progress", 20), ("progress", 10), ("complete", "p-1")]
    assert on_a.jobs() == [("progress", 10), ("complete", "p-1"), ("progress", 20)]


async def test_subscribe_after_completion_on_a_fresh_node_gets_the_final(nodes) -> None:
    a = await nodes()
    await a.publish("progress", progress("late", 50))
    await a.publish("error", {"operationId": "late", "error": "Encoder failed"})
    await eventually(lambda: a.bus._pending.nbytes == 0 and not a.bus._down)
    await asyncio.sleep(0.1)  # the SET travels in the same pipeline as the PUBLISH
    c = await nodes()  # started after the operation ended: nothing in its memory
    client, transport = connect(c)
    send(client, {"type": "subscribe", "data": {"operationIds": ["late"]}})
    await eventually(lambda: transport.jobs() == [("error", "late")])


async def test_a_batch_publishes_every_message_and_stores_each_operations_newest(nodes, redis_url: str) -> None:
    """Messages published in one turn go to Redis as one batch: all of them reach the other node
    in order, the stored latest state of each operation is its newest, and the recent set is
    trimmed of entries older than the TTL on the first batch, not again within TRIM_EVERY."""
    a, b = await nodes(), await nodes()
    _, on_b = connect(b)
    redis = create_redis(redis_url)
    recent = recent_key("nve:test")
    stale = operation_key(LOCAL, "long-gone")
    await redis.zadd(recent, {stale: 0})
    for value in (10, 20, 30):  # publish() never suspends: the sender wakes to all four, one batch
        await a.publish("progress", progress("many", value))
    await a.publish("progress", progress("other", 5))
    await eventually(lambda: len(on_b.jobs()) == 4)
    # The SETs go ahead of the PUBLISHes in the pipeline: stored once the messages came.
    assert on_b.jobs() == [("progress", 10), ("progress", 20), ("progress", 30), ("progress", 5)]
    assert unpack(await redis.get(latest_key("nve:test", LOCAL, "many"))).progress == 30
    assert unpack(await redis.get(latest_key("nve:test", LOCAL, "other"))).progress == 5
    assert await redis.zscore(recent, stale) is None
    assert await redis.zscore(recent, operation_key(LOCAL, "many")) is not None
    await redis.zadd(recent, {stale: 0})
    await a.publish("progress", progress("many", 40))
    await eventually(lambda: len(on_b.jobs()) == 5)
    assert await redis.zscore(recent, stale) == 0
    await redis.aclose()


async def test_redis_outage_keeps_local_delivery_and_catches_up_after(nodes, redis_server) -> None:
    a, b = await nodes(), await nodes()
    _, on_a = connect(a)
    _, on_b = connect(b)
    redis_server.stop()
    try:
        for value in (10, 20, 30):
            await a.publish("progress", progress("o-1", value))
        await a.publish("complete", {"operationId": "o-1", "result": {"filename": "o.mp4", "url": "/videos/o.mp4"}})
        await flushed()  # local delivery does not wait for Redis
        assert on_a.jobs() == [("progress", 10), ("progress", 20), ("progress", 30), ("complete", "o-1")]
        await asyncio.sleep(0.3)
    finally:
        redis_server.start()
    await eventually(lambda: a.bus.state == "up" and b.bus.state == "up")
    # The other node gets the final (intermediate progress may be coalesced away).
    await eventually(lambda: ("complete", "o-1") in on_b.jobs())
    values = [v for kind, v in on_b.jobs() if kind == "progress"]
    assert values == sorted(values)
    await a.publish("progress", progress("o-2", 1))
    await eventually(lambda: ("progress", 1) in on_b.jobs())


async def test_hub_starts_and_serves_locally_with_redis_down(redis_server) -> None:
    redis_server.stop()
    try:
        hub = create_hub(WsSettings(channel="nve:test"), redis_server.url)
        await hub.start()
        assert hub.bus.state == "down"
        _, transport = connect(hub)
        await hub.publish("progress", progress("d-1", 5))
        await flushed()
        assert transport.jobs() == [("progress", 5)]
        client, other = connect(hub)
        send(client, {"type": "subscribe", "data": {"operationIds": ["unknown"]}})
        await asyncio.sleep(0.05)  # the Redis lookup fails fast; nothing is sent
        assert other.jobs() == []
    finally:
        redis_server.start()
    await eventually(lambda: hub.bus.state == "up")
    await hub.close(timeout=0)


async def test_node_cut_off_from_redis_catches_up_on_what_it_missed(redis_url: str) -> None:
    from tests.tcpproxy import TCPProxy

    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    proxy = TCPProxy(host, int(port))
    await proxy.start()
    settings = WsSettings(channel="nve:cut")
    a = create_hub(settings, redis_url)
    b = create_hub(settings, f"redis://127.0.0.1:{proxy.port}/0")  # b reaches Redis through the proxy
    await a.start()
    await b.start()
    try:
        _, on_b = connect(b)
        await a.publish("progress", progress("c-1", 10))
        await eventually(lambda: on_b.jobs() == [("progress", 10)])
        await proxy.cut()
        await eventually(lambda: b.bus.state == "down")
        # Published while b is not subscribed: pub/sub will never replay these to b.
        await a.publish("progress", progress("c-1", 70))
        await a.publish("complete", {"operationId": "c-1", "result": {"filename": "c.mp4", "url": "/videos/c.mp4"}})
        await a.publish("error", {"operationId": "c-2", "error": "never seen by b"})
        await asyncio.sleep(0.2)
        await proxy.restore()
        await eventually(lambda: ("complete", "c-1") in on_b.jobs() and ("error", "c-2") in on_b.jobs())
        assert on_b.jobs()[0] == ("progress", 10)
        assert on_b.jobs().count(("complete", "c-1")) == 1
    finally:
        await a.close(timeout=0)
        await b.close(timeout=0)
        await proxy.close()
