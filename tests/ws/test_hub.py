"""The hub with fake transports: fan-out, subscriptions, slow consumers, ordering guarantees."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from core.access.owners import LOCAL
from server.ws.hub import Hub, create_hub
from server.ws.messages import WELCOME_TEXT, BadMessage, Envelope, job_envelope
from server.ws.settings import WsSettings
from tests.ws.fakes import connect, done, flushed, progress, send
from tests.ws.frames import PONG, TEXT, client_frame


async def test_welcome_carries_a_client_id() -> None:
    hub = Hub()
    client, transport = connect(hub)
    await flushed()
    [welcome] = transport.messages()
    assert welcome == {"type": "ping", "data": {"clientId": client.client_id, "message": WELCOME_TEXT}}
    uuid.UUID(client.client_id)
    assert hub.clients == {client.client_id: client}


async def test_broadcast_builds_the_frame_once_for_every_client() -> None:
    hub = Hub()
    transports = [connect(hub)[1] for _ in range(5)]
    await hub.publish("progress", progress("trim-1", 10))
    await flushed()
    last = [t.writes[-1] for t in transports]
    assert all(frame is last[0] for frame in last)  # the very same bytes object
    assert transports[0].messages()[-1] == {"type": "progress", "data": progress("trim-1", 10)}


async def test_ping_echoes_data_and_bad_messages_get_errors_not_closes() -> None:
    hub = Hub()
    client, transport = connect(hub)
    neighbour, other = connect(hub)
    send(client, {"type": "ping", "data": {"n": [1, 2]}})
    send(client, b"not json")
    send(client, {"type": "dance"})
    send(client, [1, 2])
    send(client, {"type": "subscribe", "data": {"operationIds": "trim-1"}})
    client.data_received(client_frame(0x2, b"\x00\x01"))
    await flushed()
    replies = transport.messages()[1:]
    assert replies[0] == {"type": "pong", "data": {"n": [1, 2]}}
    assert [r["type"] for r in replies[1:]] == ["error"] * 5
    assert "JSON" in replies[1]["data"]["error"] and "dance" in replies[2]["data"]["error"]
    assert "operationIds" in replies[4]["data"]["error"] and "Binary" in replies[5]["data"]["error"]
    assert transport.close_code() is None and not transport.closing
    await hub.publish("progress", progress("trim-1", 5))
    await flushed()
    assert transport.jobs() == other.jobs() == [("progress", 5)]


async def test_publish_validates_its_message() -> None:
    hub = Hub()
    with pytest.raises(BadMessage):
        await hub.publish("progress", {"operationId": "x", "progress": 101})
    with pytest.raises(BadMessage):
        await hub.publish("done", {"operationId": "x"})
    with pytest.raises(BadMessage):
        await hub.publish("complete", {"result": {}})


async def test_subscription_narrows_and_unsubscribing_all_widens_again() -> None:
    hub = Hub()
    client, transport = connect(hub)
    send(client, {"type": "subscribe", "data": {"operationIds": ["a"]}})
    await hub.publish("progress", progress("a", 1))
    await hub.publish("progress", progress("b", 1))
    send(client, {"type": "unsubscribe", "data": {"operationIds": ["a"]}})
    await hub.publish("progress", progress("b", 2))
    await flushed()
    ops = [m["data"]["operationId"] for m in transport.messages() if m["type"] == "progress"]
    assert ops == ["a", "b"]


async def test_progress_is_monotonic_and_final_exactly_once() -> None:
    hub = Hub()
    _, transport = connect(hub)
    for value in (10, 50, 40, 50, 90):
        await hub.publish("progress", progress("op", value))
    await hub.publish("complete", done("op"))
    await hub.publish("progress", progress("op", 95))
    await hub.publish("complete", done("op"))
    await hub.publish("error", {"operationId": "op", "error": "late"})
    await flushed()
    assert transport.jobs() == [("progress", 10), ("progress", 50), ("progress", 50), ("progress", 90),
                                ("complete", "op")]


async def test_subscribe_sends_the_latest_state_at_once_and_final_once_per_connection() -> None:
    hub = Hub()
    _, first = connect(hub)
    await hub.publish("progress", progress("op", 30))
    await hub.publish("complete", done("op"))
    late, transport = connect(hub)
    send(late, {"type": "subscribe", "data": {"operationIds": ["op"]}})
    await flushed()
    assert transport.jobs() == [("complete", "op")]
    send(late, {"type": "subscribe", "data": {"operationIds": ["op"]}})
    send(late, {"type": "unsubscribe", "data": {"operationIds": ["op"]}})
    send(late, {"type": "subscribe", "data": {"operationIds": ["op"]}})
    send(_, {"type": "subscribe", "data": {"operationIds": ["op"]}})
    await flushed()
    assert transport.jobs() == [("complete", "op")]
    assert first.jobs() == [("progress", 30), ("complete", "op")]


async def test_subscribe_to_unknown_operation_asks_the_fallback() -> None:
    asked = []

    async def job_table(operation_id: str) -> Envelope | None:
        asked.append(operation_id)
        return job_envelope("complete", done(operation_id), LOCAL) if operation_id == "old" else None

    hub = create_hub(WsSettings(), fallback=job_table)
    client, transport = connect(hub)
    send(client, {"type": "subscribe", "data": {"operationIds": ["old", "unknown"]}})
    await flushed()
    assert sorted(asked) == ["old", "unknown"]
    assert transport.jobs() == [("complete", "old")]
    await hub.publish("complete", done("old"))  # the job system announcing it again
    await flushed()
    assert transport.jobs() == [("complete", "old")]


async def test_slow_client_gets_latest_progress_and_every_final() -> None:
    hub = Hub(WsSettings(client_budget_bytes=2000, client_hard_cap_bytes=1 << 20))
    _, stalled = connect(hub, reading=False)
    _, fast = connect(hub)
    for value in range(101):
        await hub.publish("progress", progress("a", value))
        await hub.publish("progress", progress("b", value / 2))
        await flushed()
    await hub.publish("complete", done("b"))
    await hub.publish("error", {"operationId": "a", "error": "failed"})
    await flushed()
    assert stalled.paused
    assert fast.jobs()[-2:] == [("complete", "b"), ("error", "a")]
    assert len(fast.jobs()) == 204
    stalled.drain()
    await flushed()
    got = stalled.jobs()
    assert len(got) < 60  # the backlog held one message per operation
    # Order across operations may change in the backlog; within one it never does.
    assert sorted(got[-2:]) == [("complete", "b"), ("error", "a")]
    assert stalled.close_code() is None


async def test_slow_client_values_stay_monotonic_per_operation() -> None:
    hub = Hub(WsSettings(client_budget_bytes=500))
    _, stalled = connect(hub, reading=False)
    for value in range(0, 100, 3):
        await hub.publish("progress", progress("a", value))
        await flushed()
        if value % 9 == 0:
            stalled.drain()
    stalled.drain()
    await flushed()
    values = [v for _, v in stalled.jobs()]
    assert values == sorted(values) and values[-1] == 99


async def test_client_past_the_hard_cap_is_closed_1013_and_others_unaffected() -> None:
    hub = Hub(WsSettings(client_budget_bytes=1000, client_hard_cap_bytes=20_000))
    _, stalled = connect(hub, reading=False)
    _, fast = connect(hub)
    for index in range(500):  # distinct operations: nothing to coalesce
        await hub.publish("complete", done(f"op-{index}"))
        await flushed()
    assert stalled.close_code() == 1013 and stalled.closing
    assert sum(len(w) for w in stalled.writes) < 20_000 + 2000
    assert len(fast.jobs()) == 500
    stalled.lose()
    assert len(hub.clients) == 1


async def test_ping_flood_from_a_client_that_never_reads_is_bounded() -> None:
    hub = Hub(WsSettings(client_budget_bytes=1000, client_hard_cap_bytes=10_000))
    client, stalled = connect(hub, reading=False)
    for _ in range(2000):
        send(client, {"type": "ping", "data": "x" * 20})
        await flushed()
    assert stalled.close_code() == 1013
    assert sum(len(w) for w in stalled.writes) < 12_000


async def test_heartbeat_pings_and_drops_silent_clients() -> None:
    hub = Hub(WsSettings(ping_interval=0.05, close_linger=0.1))
    await hub.start()
    try:
        silent, silent_t = connect(hub)
        lively, lively_t = connect(hub)
        for _ in range(8):
            await asyncio.sleep(0.03)
            lively.data_received(client_frame(PONG, b""))
        assert silent_t.close_code() == 1011
        assert lively_t.close_code() is None
        assert lively_t.pings() >= 3
        heartbeats = [m for m in lively_t.messages()[1:] if m["type"] == "ping"]
        assert heartbeats and all(isinstance(m["data"]["timestamp"], int) for m in heartbeats)
        await asyncio.sleep(0.12)
        assert silent_t.aborted  # its close never completed: torn down after the linger
    finally:
        await hub.close(timeout=0)


async def test_close_sends_1001_to_everyone() -> None:
    hub = Hub()
    await hub.start()
    pairs = [connect(hub) for _ in range(3)]

    async def lose_soon() -> None:
        await asyncio.sleep(0.01)
        for _, transport in pairs:
            transport.lose()

    task = asyncio.create_task(lose_soon())
    await hub.close()
    await task
    assert [t.close_code() for _, t in pairs] == [1001] * 3
    assert not hub.clients


async def test_leftover_bytes_are_processed_at_once() -> None:
    from tests.ws.fakes import FakeTransport

    hub = Hub()
    transport = FakeTransport()
    client = hub.attach(transport, client_frame(TEXT, json.dumps({"type": "ping", "data": 7}).encode()), LOCAL)
    transport.protocol = client
    await flushed()
    assert transport.messages()[1] == {"type": "pong", "data": 7}


async def test_a_broadcast_client_that_subscribes_later_does_not_get_a_final_twice() -> None:
    hub = Hub()
    early, early_transport = connect(hub)
    await hub.publish("complete", done("seen"))
    late, late_transport = connect(hub)  # connected after the final: it never saw it
    for client in (early, late):
        send(client, {"type": "subscribe", "data": {"operationIds": ["seen"]}})
    await flushed()
    assert early_transport.jobs() == [("complete", "seen")]
    assert late_transport.jobs() == [("complete", "seen")]
    send(early, {"type": "unsubscribe", "data": {"operationIds": ["seen"]}})
    send(early, {"type": "subscribe", "data": {"operationIds": ["seen"]}})  # and again, as a follower now
    await flushed()
    assert early_transport.jobs() == [("complete", "seen")]


async def test_a_broadcast_client_remembers_no_finals() -> None:
    """Its state must not grow with the jobs it sees (a soak run found 100 KiB per connection)."""
    hub = Hub()
    client, transport = connect(hub)
    for index in range(200):
        await hub.publish("complete", done(f"op-{index}"))
    await flushed()
    assert len(transport.jobs()) == 200
    assert client._finished == {}
