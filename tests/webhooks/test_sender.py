"""WebhookSender against real PostgreSQL and a real loopback receiver.

Settings are fast (retries 50 ms apart, a 50 ms poll) but the code path is production's:
events come from the triggers and ``emit``, deliveries are claimed with the SQL every node
runs, and the receiver is an HTTP server on a socket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from standardwebhooks import Webhook

from core.db.pool import Database
from core.jobs.queue import JobQueue
from core.registry import REGISTRY
from core.webhooks.sender import WebhookSender
from core.webhooks.settings import WebhookSettings
from core.webhooks.store import WebhookStore, emit
from tests.webhooks.receiver import HANG, Received
from tests.webhooks.units import finish_job

FAST = WebhookSettings(allow_private=True, retry_base=0.05, retry_max=0.2, poll=0.05, total_timeout=2.0, lease=3.0)
OWNER = "tenant:alice"


@pytest.fixture
async def senders(db: Database, migrated_dsn: str) -> AsyncIterator[Callable[..., Awaitable[WebhookSender]]]:
    """``await senders(**overrides)``: a started sender (a node) with FAST settings changed by ``overrides``."""
    started: list[WebhookSender] = []

    async def start(**overrides: Any) -> WebhookSender:
        sender = WebhookSender(migrated_dsn, db.acquire, dataclasses.replace(FAST, **overrides))
        await sender.start()
        started.append(sender)
        return sender

    yield start
    for sender in started:
        await sender.stop()


async def _subscribe(db: Database, url: str, events: tuple[str, ...] = ("upload.ready",)) -> tuple[str, str]:
    endpoint, secret = await WebhookStore(db.acquire, FAST).create(OWNER, {"url": url, "events": list(events)})
    return endpoint.id, secret


async def _upload_ready(db: Database, name: str) -> str:
    async with db.acquire() as connection, connection.transaction():
        event_id = await emit(connection, OWNER, "upload.ready", name, {"filename": name, "url": f"/videos/{name}"})
    assert event_id is not None
    return event_id


async def _deliveries(db: Database, endpoint_id: str) -> list[dict[str, Any]]:
    return [d.to_api() for d in await WebhookStore(db.acquire, FAST).deliveries(OWNER, endpoint_id)]


async def _until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _metric(result: str) -> float:
    return REGISTRY.get_sample_value("nve_webhook_deliveries_total", {"result": result}) or 0.0


def _verified(secret: str, request: Received) -> Any:
    return Webhook(secret).verify(request.body, request.headers)


async def test_a_finished_job_is_delivered_signed_with_the_jobs_api_body(db, receiver, senders):
    endpoint_id, secret = await _subscribe(db, receiver.url("/jobs"), ("job.completed",))
    delivered, latencies = _metric("delivered"), REGISTRY.get_sample_value("nve_webhook_delivery_seconds_count")
    await senders()
    job = await finish_job(JobQueue(db.acquire), OWNER, "op-1")
    [request] = await receiver.wait("/jobs")
    message = _verified(secret, request)
    assert message["type"] == "job.completed" and message["data"] == job.to_api()
    assert message["data"]["result"] == {"filename": "op-1.mp4"}
    assert request.headers["webhook-id"].startswith("msg_")
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5

    async def recorded() -> bool:
        return (await _deliveries(db, endpoint_id))[0]["status"] == "delivered"

    await _until("the delivery recorded", recorded)
    [delivery] = await _deliveries(db, endpoint_id)
    assert (delivery["attempts"], delivery["lastStatus"], delivery["eventId"]) == (1, 200, request.headers["webhook-id"])
    assert _metric("delivered") == delivered + 1
    assert REGISTRY.get_sample_value("nve_webhook_delivery_seconds_count") == (latencies or 0) + 1


async def test_failed_attempts_are_retried_with_the_same_id_and_body(db, receiver, senders):
    receiver.script("/flaky", 500, 503, 200)
    endpoint_id, secret = await _subscribe(db, receiver.url("/flaky"))
    retries = _metric("retry")
    await senders()
    event_id = await _upload_ready(db, "a.mp4")
    requests = await receiver.wait("/flaky", 3)
    assert {r.headers["webhook-id"] for r in requests} == {event_id}
    assert len({r.body for r in requests}) == 1
    assert _verified(secret, requests[2])["data"] == {"filename": "a.mp4", "url": "/videos/a.mp4"}
    assert requests[1].at - requests[0].at >= FAST.retry_base * 0.5

    async def delivered() -> bool:
        return (await _deliveries(db, endpoint_id))[0]["status"] == "delivered"

    await _until("the delivery recorded", delivered)
    [delivery] = await _deliveries(db, endpoint_id)
    assert (delivery["attempts"], delivery["lastStatus"], delivery["lastError"]) == (3, 200, None)
    assert _metric("retry") == retries + 2
    endpoint = await WebhookStore(db.acquire, FAST).get(OWNER, endpoint_id)
    assert endpoint.consecutive_failures == 0, "a 2xx resets the count"


async def test_a_delivery_is_given_up_after_retry_for(db, receiver, senders):
    receiver.script("/down", 500)
    endpoint_id, _ = await _subscribe(db, receiver.url("/down"))
    failed = _metric("failed")
    await senders(retry_for=0.4)
    await _upload_ready(db, "a.mp4")

    async def given_up() -> bool:
        return (await _deliveries(db, endpoint_id))[0]["status"] == "failed"

    await _until("the delivery failed", given_up)
    [delivery] = await _deliveries(db, endpoint_id)
    assert delivery["attempts"] >= 2 and delivery["lastStatus"] == 500 and delivery["nextAttemptAt"] is None
    assert _metric("failed") == failed + 1
    sent = len(receiver.on("/down"))
    await asyncio.sleep(0.3)
    assert len(receiver.on("/down")) == sent, "nothing is sent once failed"


async def test_an_endpoint_failing_disable_after_times_in_a_row_is_disabled(db, receiver, senders):
    receiver.script("/broken", 500)
    endpoint_id, _ = await _subscribe(db, receiver.url("/broken"))
    await senders(disable_after=3)
    await _upload_ready(db, "a.mp4")
    await _upload_ready(db, "b.mp4")
    store = WebhookStore(db.acquire, FAST)

    async def disabled() -> bool:
        return (await store.get(OWNER, endpoint_id)).disabled_at is not None

    await _until("the endpoint disabled", disabled)
    endpoint = await store.get(OWNER, endpoint_id)
    assert endpoint.disabled_reason == "Disabled after 3 failed attempts in a row; the last: HTTP 500"
    # Attempts already in flight when it was disabled still end; nothing starts after.
    await asyncio.sleep(0.2)
    sent = len(receiver.on("/broken"))
    assert 3 <= sent < 3 + FAST.per_endpoint
    await asyncio.sleep(0.3)
    assert len(receiver.on("/broken")) == sent, "a disabled endpoint is sent nothing"
    assert await _upload_ready_or_none(db, "c.mp4") is None, "nor are new events written for it"


async def _upload_ready_or_none(db: Database, name: str) -> str | None:
    async with db.acquire() as connection:
        return await emit(connection, OWNER, "upload.ready", name, {"filename": name})


async def test_during_a_rotation_both_secrets_sign(db, receiver, senders):
    endpoint_id, old = await _subscribe(db, receiver.url("/rotated"))
    new, _ = await WebhookStore(db.acquire, FAST).rotate(OWNER, endpoint_id, {"overlapSeconds": 60})
    await senders()
    await _upload_ready(db, "a.mp4")
    [request] = await receiver.wait("/rotated")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert _verified(old, request) == _verified(new, request)


async def test_a_private_address_is_refused_at_each_attempt(db, receiver, senders):
    endpoint_id, _ = await _subscribe(db, receiver.url("/private"))  # accepted while private addresses were allowed
    await senders(allow_private=False)
    await _upload_ready(db, "a.mp4")

    async def attempted() -> bool:
        return (await _deliveries(db, endpoint_id))[0]["attempts"] >= 1

    await _until("an attempt", attempted)
    [delivery] = await _deliveries(db, endpoint_id)
    assert delivery["lastError"] == "refused: 127.0.0.1 resolves to 127.0.0.1, a private address"
    assert delivery["lastStatus"] is None and receiver.received == []


async def test_a_hanging_endpoint_costs_only_its_own_deliveries(db, receiver, senders):
    receiver.script("/hangs", HANG)
    await _subscribe(db, receiver.url("/hangs"))
    await _subscribe(db, receiver.url("/answers"))
    # Two nodes: the per-endpoint cap holds across them.
    await senders(total_timeout=30.0, lease=40.0)
    await senders(total_timeout=30.0, lease=40.0)
    started = time.time()  # the receiver stamps arrivals with the wall clock
    for index in range(10):
        await _upload_ready(db, f"{index}.mp4")
    answered = await receiver.wait("/answers", 10, timeout=5)
    assert answered[-1].at - started < 5, "the other endpoint's deliveries arrive while the first one hangs"
    await asyncio.sleep(0.3)
    assert len(receiver.on("/hangs")) == FAST.per_endpoint, "at most per_endpoint in flight, across both nodes"


async def test_a_delivery_whose_node_died_is_sent_after_its_lease(db, receiver, senders, migrated_dsn):
    endpoint_id, _ = await _subscribe(db, receiver.url("/orphan"))
    event_id = await _upload_ready(db, "a.mp4")
    settings = dataclasses.replace(FAST, total_timeout=0.5, lease=1.0)
    # A node that claims and dies: its claim is the real one, and it never records anything.
    dead = WebhookSender(migrated_dsn, db.acquire, settings)
    [claim] = await dead._claim(10)
    claimed_at = time.time()
    await senders(total_timeout=0.5, lease=1.0)
    [request] = await receiver.wait("/orphan", timeout=5)
    assert request.at - claimed_at >= 0.8, "not before the lease expired"
    assert request.headers["webhook-id"] == event_id == claim.event_id

    async def delivered() -> bool:
        return (await _deliveries(db, endpoint_id))[0]["status"] == "delivered"

    await _until("the delivery recorded", delivered)


async def test_stop_hands_the_leases_back(db, receiver, senders, migrated_dsn):
    receiver.script("/hangs", HANG)
    await _subscribe(db, receiver.url("/hangs"))
    sender = await senders()
    await _upload_ready(db, "a.mp4")
    await receiver.wait("/hangs")
    await sender.stop()
    connection = await asyncpg.connect(migrated_dsn)
    try:
        row = await connection.fetchrow("SELECT status, leased_until, attempts FROM webhook_deliveries")
    finally:
        await connection.close()
    assert (row["status"], row["leased_until"], row["attempts"]) == ("pending", None, 0)


async def test_redeliver_sends_the_same_message_again(db, receiver, senders):
    endpoint_id, _ = await _subscribe(db, receiver.url("/again"))
    sender = await senders()
    await _upload_ready(db, "a.mp4")
    [first] = await receiver.wait("/again")

    async def delivered() -> bool:
        return (await _deliveries(db, endpoint_id))[0]["status"] == "delivered"

    await _until("the delivery recorded", delivered)
    [delivery] = await _deliveries(db, endpoint_id)
    await WebhookStore(db.acquire, FAST).redeliver(OWNER, endpoint_id, delivery["id"])
    second = (await receiver.wait("/again", 2))[1]
    assert (second.headers["webhook-id"], second.body) == (first.headers["webhook-id"], first.body)
    await _until("the redelivery recorded", delivered)
    assert (await _deliveries(db, endpoint_id))[0]["attempts"] == 2
    assert (await sender.readiness())["events"] == "listening"


async def test_job_data_is_written_once_and_stays(db, receiver, senders, migrated_dsn):
    await _subscribe(db, receiver.url("/a"), ("job.failed",))
    await _subscribe(db, receiver.url("/b"), ("job.failed",))
    await senders()
    await senders()
    job = await finish_job(JobQueue(db.acquire), OWNER, "op-f", "failed")
    [a] = await receiver.wait("/a")
    [b] = await receiver.wait("/b")
    assert a.headers["webhook-id"] == b.headers["webhook-id"] and a.body == b.body
    assert json.loads(a.body)["data"] == job.to_api() and json.loads(a.body)["data"]["error"] == "ffmpeg said no"
    connection = await asyncpg.connect(migrated_dsn)
    try:
        stored = await connection.fetchval("SELECT data::text FROM webhook_events")
    finally:
        await connection.close()
    assert json.loads(stored) == job.to_api()


def test_settings_from_the_environment():
    assert WebhookSettings.from_env({}) == WebhookSettings()
    settings = WebhookSettings.from_env({"NVE_WEBHOOK_ALLOW_PRIVATE": "1", "NVE_WEBHOOK_RETRY_BASE": "0.5",
                                         "NVE_WEBHOOK_DISABLE_AFTER": "7", "NVE_WEBHOOK_LEASE": "12",
                                         "NVE_WEBHOOK_TIMEOUT": "3", "NVE_WEBHOOK_RETAIN": "3600"})
    assert (settings.allow_private, settings.retry_base, settings.disable_after, settings.lease,
            settings.total_timeout, settings.retain) == (True, 0.5, 7, 12.0, 3.0, 3600.0)
    assert not WebhookSettings.from_env({"NVE_WEBHOOK_ALLOW_PRIVATE": "0"}).allow_private
    with pytest.raises(ValueError, match="lease must outlast"):
        WebhookSettings(lease=10.0)
    backoffs = [WebhookSettings().backoff(attempts, 1.0) for attempts in (1, 2, 3, 20)]
    assert backoffs == [5.0, 10.0, 20.0, 3600.0]
    assert WebhookSettings().backoff(2, 0.5) == 5.0


async def test_old_events_whose_deliveries_ended_are_swept(db: Database, migrated_dsn: str) -> None:
    """Retention: an event past ``retain`` goes with its deliveries once none is pending; a
    younger one, and an old one still pending, stay."""
    endpoint, _ = await _subscribe(db, "http://127.0.0.1:9/hooks")
    old_done, old_pending, young_done = [await _upload_ready(db, f"{name}.mp4") for name in ("a", "b", "c")]
    connection = await asyncpg.connect(migrated_dsn)
    try:
        await connection.execute("UPDATE webhook_events SET created_at = now() - interval '8 days' "
                                 "WHERE id = any($1::text[])", [old_done, old_pending])
        await connection.execute("UPDATE webhook_deliveries SET status = 'delivered' WHERE event_id = any($1::text[])",
                                 [old_done, young_done])
        sender = WebhookSender(migrated_dsn, db.acquire, dataclasses.replace(FAST, retain=7 * 86400.0))
        assert await sender.sweep() == 1
        events = {row["id"] for row in await connection.fetch("SELECT id FROM webhook_events")}
        deliveries = {row["event_id"] for row in await connection.fetch(
            "SELECT event_id FROM webhook_deliveries WHERE endpoint_id = $1", endpoint)}
    finally:
        await connection.close()
    assert events == deliveries == {old_pending, young_done}
