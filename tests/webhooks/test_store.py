"""WebhookStore and the outbox against a real PostgreSQL (sql/005_webhooks.sql).

The outbox tests finish jobs through the real JobQueue, inside transactions the test commits
or rolls back, and update projects through the real ProjectStore, and count what the jobs'
trigger and the projects' UPDATE wrote: the event exists exactly when the change does, with
one delivery per subscribed, enabled endpoint of the owner.
"""

from __future__ import annotations

import dataclasses
import json
import uuid

import asyncpg
import pytest

from core.db.pool import Database
from core.errors import NotFound, PreconditionFailed, ValidationError
from core.jobs.queue import JobQueue
from core.projects import NewProject, ProjectChanges, ProjectStore
from core.webhooks.settings import WebhookSettings
from core.webhooks.store import NEW_WEBHOOK, ROTATION, WebhookStore, emit
from tests.webhooks.units import PRIVATE_OK, count, finish_job, on

URL = "http://127.0.0.1:9/hook"
ALICE, BOB = "tenant:alice", "tenant:bob"
NEW = NewProject(name="p", description=None, video_filename="a.mp4", video_url="/videos/a.mp4", timeline_state={})


@pytest.fixture
def store(db: Database) -> WebhookStore:
    return WebhookStore(db.acquire, PRIVATE_OK)


async def _endpoint(store: WebhookStore, owner: str = ALICE, events: tuple[str, ...] = ("job.completed",),
                    url: str = URL) -> str:
    endpoint, _ = await store.create(owner, {"url": url, "events": list(events)})
    return endpoint.id


async def test_the_migration_made_the_tables_and_triggers(migrated_dsn):
    tables = await count(migrated_dsn, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'webhook_%'")
    assert tables == 3
    assert await count(migrated_dsn, "SELECT count(*) FROM pg_trigger WHERE tgname = 'jobs_webhook'") == 1


async def test_create_shows_the_secret_once(store):
    endpoint, secret = await store.create(ALICE, {"url": URL, "events": ["job.completed", "job.completed",
                                                                         "upload.ready"], "description": "ci"})
    assert secret.startswith("whsec_")
    api = endpoint.to_api()
    assert set(api) == {"id", "url", "events", "description", "createdAt", "disabledAt", "disabledReason",
                        "consecutiveFailures", "previousSecretExpiresAt"}
    assert api["events"] == ["job.completed", "upload.ready"] and api["description"] == "ci"
    assert api["disabledAt"] is None and api["consecutiveFailures"] == 0
    assert secret not in json.dumps([e.to_api() for e in await store.list(ALICE)])
    assert (await store.get(ALICE, endpoint.id)).to_api() == api


@pytest.mark.parametrize(("body", "field", "sentence"), [
    ({"events": ["job.completed"]}, None, "Missing required fields: url"),
    ({"url": URL}, None, "Missing required fields: events"),
    ({"url": URL, "events": []}, "events", "Field 'events' must be a non-empty array of event types"),
    ({"url": URL, "events": ["job.done"]}, "events[0]", "Field 'events[0]' must be one of job.completed, "
                                                        "job.failed, job.cancelled, upload.ready, project.updated"),
    ({"url": 5, "events": ["job.failed"]}, "url", "Field 'url' must be a string"),
    ({"url": "ftp://x.example/", "events": ["job.failed"]}, "url",
     "Field 'url' is refused: it must be an absolute http or https URL"),
    ({"url": URL, "events": ["job.failed"], "description": "x" * 501}, "description",
     "Field 'description' must be at most 500 characters"),
])
async def test_create_refuses_a_bad_body_naming_the_field(store, body, field, sentence):
    with pytest.raises(ValidationError) as refused:
        await store.create(ALICE, body)
    assert (refused.value.field, str(refused.value)) == (field, sentence)


async def test_a_private_address_is_refused_unless_allowed(db):
    strict = WebhookStore(db.acquire, WebhookSettings())
    with pytest.raises(ValidationError) as refused:
        await strict.create(ALICE, {"url": URL, "events": ["job.completed"]})
    assert refused.value.field == "url"
    assert str(refused.value) == "Field 'url' is refused: 127.0.0.1 resolves to 127.0.0.1, a private address"
    assert await strict.list(ALICE) == []


async def test_another_owners_endpoint_is_not_found(store):
    endpoint_id = await _endpoint(store)
    assert [e.id for e in await store.list(ALICE)] == [endpoint_id]
    assert await store.list(BOB) == []
    for call in (store.get(BOB, endpoint_id), store.delete(BOB, endpoint_id), store.rotate(BOB, endpoint_id, None),
                 store.deliveries(BOB, endpoint_id), store.redeliver(BOB, endpoint_id, 1),
                 store.get(ALICE, "not-a-uuid"), store.get(ALICE, str(uuid.uuid4()))):
        with pytest.raises(NotFound, match="^Webhook .* not found$"):
            await call
    await store.delete(ALICE, endpoint_id)
    with pytest.raises(NotFound):
        await store.delete(ALICE, endpoint_id)


async def test_rotation_keeps_the_old_secret_for_the_overlap(store, migrated_dsn):
    endpoint, first = await store.create(ALICE, {"url": URL, "events": ["job.completed"]})
    second, expires = await store.rotate(ALICE, endpoint.id, {"overlapSeconds": 60})
    assert second != first and expires is not None
    assert (await store.get(ALICE, endpoint.id)).previous_secret_expires_at == expires
    connection = await asyncpg.connect(migrated_dsn)
    try:
        row = await connection.fetchrow("SELECT secret, previous_secret, previous_secret_expires_at - now() AS left"
                                        " FROM webhook_endpoints WHERE id = $1", uuid.UUID(endpoint.id))
        assert (row["secret"], row["previous_secret"]) == (second, first)
        assert 55 < row["left"].total_seconds() <= 60
        third, none = await store.rotate(ALICE, endpoint.id, {"overlapSeconds": 0})
        assert none is None
        row = await connection.fetchrow("SELECT secret, previous_secret FROM webhook_endpoints WHERE id = $1",
                                        uuid.UUID(endpoint.id))
        assert (row["secret"], row["previous_secret"]) == (third, None)
    finally:
        await connection.close()
    _, default = await store.rotate(ALICE, endpoint.id, None)
    assert default is not None
    with pytest.raises(ValidationError, match="overlapSeconds' must be between 0 and 604800"):
        await store.rotate(ALICE, endpoint.id, {"overlapSeconds": 10**6})


def test_the_shapes_are_named_schemas():
    assert NEW_WEBHOOK.definition()["required"] == ["url", "events"]
    assert NEW_WEBHOOK.definition()["properties"]["events"]["minItems"] == 1
    assert ROTATION.definition()["properties"]["overlapSeconds"]["maximum"] == 604800


# -- the outbox ------------------------------------------------------------------------------

async def _outbox(dsn: str) -> list[tuple[str, str, str, str]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT v.owner, v.type, v.subject, d.endpoint_id::text AS endpoint FROM webhook_events v "
            "LEFT JOIN webhook_deliveries d ON d.event_id = v.id ORDER BY v.created_at, d.id")
        return [(r["owner"], r["type"], r["subject"], r["endpoint"]) for r in rows]
    finally:
        await connection.close()


async def test_a_rolled_back_job_end_has_no_event_a_committed_one_has_one(store, migrated_dsn):
    subscribed = await _endpoint(store, events=("job.completed", "job.failed"))
    also = await _endpoint(store, events=("job.completed",))
    await _endpoint(store, events=("job.failed",))  # not subscribed to job.completed
    await _endpoint(store, BOB, events=("job.completed",))  # another owner
    disabled = await _endpoint(store, events=("job.completed",))
    connection = await asyncpg.connect(migrated_dsn)
    try:
        await connection.execute("UPDATE webhook_endpoints SET disabled_at = now() WHERE id = $1",
                                 uuid.UUID(disabled))
        queue = JobQueue(on(connection))
        transaction = connection.transaction()
        await transaction.start()
        await finish_job(queue, ALICE, "op-rolled-back")
        await transaction.rollback()
        assert await _outbox(migrated_dsn) == []

        async with connection.transaction():
            await finish_job(queue, ALICE, "op-committed")
            assert await _outbox(migrated_dsn) == [], "not visible before the commit"
    finally:
        await connection.close()
    assert sorted(await _outbox(migrated_dsn)) == sorted([(ALICE, "job.completed", "op-committed", subscribed),
                                                          (ALICE, "job.completed", "op-committed", also)])


async def test_each_way_a_job_ends_is_its_event_once(store, db, migrated_dsn):
    endpoint = await _endpoint(store, events=("job.completed", "job.failed", "job.cancelled"))
    queue = JobQueue(db.acquire)
    await finish_job(queue, ALICE, "op-done")
    await finish_job(queue, ALICE, "op-failed", "failed")
    await finish_job(queue, ALICE, "op-cancelled", "cancelled")
    await queue.enqueue(ALICE, "op-queued-cancel", "trim", {})
    await queue.cancel(ALICE, "op-queued-cancel")
    await queue.cancel(ALICE, "op-queued-cancel")  # already cancelled: no second event
    assert await _outbox(migrated_dsn) == [(ALICE, "job.completed", "op-done", endpoint),
                                           (ALICE, "job.failed", "op-failed", endpoint),
                                           (ALICE, "job.cancelled", "op-cancelled", endpoint),
                                           (ALICE, "job.cancelled", "op-queued-cancel", endpoint)]
    assert await count(migrated_dsn, "SELECT count(*) FROM webhook_events WHERE data IS NOT NULL") == 0


async def test_no_subscriber_writes_nothing(store, db, migrated_dsn):
    await _endpoint(store, BOB)
    await finish_job(JobQueue(db.acquire), ALICE, "op-1")
    assert await count(migrated_dsn, "SELECT count(*) FROM webhook_events") == 0


async def test_a_project_update_is_its_event_with_id_and_version(store, db, migrated_dsn):
    endpoint = await _endpoint(store, events=("project.updated",))
    projects = ProjectStore(db)
    project = json.loads((await projects.create(ALICE, NEW))[0].json)["id"]
    assert await _outbox(migrated_dsn) == [], "creating a project is no update"
    updated = await projects.update(ALICE, project, ProjectChanges(name="q", has_name=True), None)
    assert await _outbox(migrated_dsn) == [(ALICE, "project.updated", str(project), endpoint)]
    connection = await asyncpg.connect(migrated_dsn)
    try:
        data = json.loads(await connection.fetchval("SELECT data::text FROM webhook_events"))
    finally:
        await connection.close()
    assert data == {"id": project, "version": updated.version} == {"id": project, "version": 2}
    with pytest.raises(PreconditionFailed):
        await projects.update(ALICE, project, ProjectChanges(name="r", has_name=True), 1)
    assert len(await _outbox(migrated_dsn)) == 1, "an update that did not happen is no event"


async def test_a_project_update_without_subscriber_writes_nothing(store, db, migrated_dsn):
    await _endpoint(store, ALICE, events=("job.completed",))
    await _endpoint(store, BOB, events=("project.updated",))
    projects = ProjectStore(db)
    project = json.loads((await projects.create(ALICE, NEW))[0].json)["id"]
    await projects.update(ALICE, project, ProjectChanges(name="q", has_name=True), None)
    assert await count(migrated_dsn, "SELECT count(*) FROM webhook_events") == 0


async def test_emit_writes_in_the_callers_transaction(store, migrated_dsn):
    endpoint = await _endpoint(store, events=("upload.ready",))
    data = {"filename": "a.mp4", "url": "/videos/a.mp4", "metadata": {"duration": 2.0}}
    connection = await asyncpg.connect(migrated_dsn)
    try:
        async with connection.transaction():
            assert await emit(connection, BOB, "upload.ready", "a.mp4", data) is None
            assert await emit(connection, ALICE, "job.completed", "a.mp4", data) is None
        transaction = connection.transaction()
        await transaction.start()
        assert await emit(connection, ALICE, "upload.ready", "a.mp4", data) is not None
        await transaction.rollback()
        assert await _outbox(migrated_dsn) == []
        async with connection.transaction():
            event_id = await emit(connection, ALICE, "upload.ready", "a.mp4", data)
        row = await connection.fetchrow("SELECT id, data::text FROM webhook_events")
    finally:
        await connection.close()
    assert event_id is not None and event_id.startswith("msg_") and len(event_id) == 30
    assert row["id"] == event_id and json.loads(row["data"]) == data
    assert await _outbox(migrated_dsn) == [(ALICE, "upload.ready", "a.mp4", endpoint)]


async def test_deliveries_and_redeliver(store, db, migrated_dsn):
    endpoint = await _endpoint(store)
    await finish_job(JobQueue(db.acquire), ALICE, "op-1")
    [delivery] = await store.deliveries(ALICE, endpoint)
    api = delivery.to_api()
    assert api["status"] == "pending" and api["attempts"] == 0 and api["eventType"] == "job.completed"
    assert api["nextAttemptAt"] is not None and api["lastStatus"] is None
    assert set(api) == {"id", "eventId", "eventType", "status", "attempts", "lastStatus", "lastError",
                        "lastAttemptAt", "nextAttemptAt", "deliveredAt", "createdAt"}
    connection = await asyncpg.connect(migrated_dsn)
    try:
        await connection.execute("UPDATE webhook_deliveries SET status = 'failed', attempts = 7, last_status = 500")
        await connection.execute("UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = 'x', "
                                 "consecutive_failures = 100")
    finally:
        await connection.close()
    [failed] = await store.deliveries(ALICE, endpoint)
    assert failed.to_api()["nextAttemptAt"] is None
    again = await store.redeliver(ALICE, endpoint, delivery.id)
    assert dataclasses.replace(again, next_attempt_at=failed.next_attempt_at) == dataclasses.replace(
        failed, status="pending")
    enabled = await store.get(ALICE, endpoint)
    assert (enabled.disabled_at, enabled.disabled_reason, enabled.consecutive_failures) == (None, None, 0)
    with pytest.raises(NotFound, match="^Delivery 999 of webhook"):
        await store.redeliver(ALICE, endpoint, 999)
    with pytest.raises(NotFound):
        await store.redeliver(ALICE, endpoint, 2**70)
    other = await _endpoint(store)
    with pytest.raises(NotFound):
        await store.redeliver(ALICE, other, delivery.id)
