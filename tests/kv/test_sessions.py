"""SessionStore against real Redis and PostgreSQL: TTL, sliding, write-through, outage."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from core.db.pool import Database
from core.errors import ValidationError
from core.kv.connection import RedisConnection
from core.sessions import DEFAULT_SETTINGS, SessionStore, parse_session_id
from tests.conftest import RedisServer
from tests.kv.helpers import wait_until_available


async def row(db: Database, session_id: str) -> tuple[dict, float] | None:
    async with db.acquire() as connection:
        found = await connection.fetchrow(
            "SELECT data::text, extract(epoch FROM expires_at - now()) AS left FROM sessions"
            " WHERE id = $1", session_id)
    return None if found is None else (json.loads(found["data"]), float(found["left"]))


async def test_new_session_is_written_to_both_stores(kv: RedisConnection, db: Database) -> None:
    store = SessionStore(kv, db)
    session = await store.open(None)
    assert session.created and uuid.UUID(session.id).version == 4
    assert session.data == {"settings": DEFAULT_SETTINGS, "recentProjects": []}
    cached = await kv.run(lambda r: r.get(f"session:{session.id}"))
    assert json.loads(cached) == session.data
    assert 3590 < await kv.run(lambda r: r.ttl(f"session:{session.id}")) <= 3600
    stored = await row(db, session.id)
    assert stored is not None and stored[0] == session.data and 3590 < stored[1] <= 3600
    again = await store.open(session.id)
    assert not again.created and again.id == session.id


@pytest.mark.parametrize("cookie", ["", "nope", str(uuid.uuid1()), str(uuid.uuid4()).upper()])
def test_only_canonical_uuid4_ids_are_accepted(cookie: str) -> None:
    assert parse_session_id(cookie) is None


async def test_unknown_id_gets_a_new_session(kv: RedisConnection, db: Database) -> None:
    stale = str(uuid.uuid4())
    session = await SessionStore(kv, db).open(stale)
    assert session.created and session.id != stale


async def test_settings_update_validates_and_persists(kv: RedisConnection, db: Database) -> None:
    store = SessionStore(kv, db)
    session = await store.open(None)
    updated = await store.update_settings(session.id, {"theme": "dark", "volume": 0.5})
    assert updated.data["settings"] == {**DEFAULT_SETTINGS, "theme": "dark", "volume": 0.5}
    await store.update_settings(session.id, {"muted": True})
    stored = await row(db, session.id)
    assert stored is not None
    assert stored[0]["settings"] == {**DEFAULT_SETTINGS, "theme": "dark", "volume": 0.5,
                                     "muted": True}
    with pytest.raises(ValidationError) as bad:
        await store.update_settings(session.id, {"volume": 3})
    assert bad.value.field == "volume" and "volume" in str(bad.value)
    with pytest.raises(ValidationError) as unknown:
        await store.update_settings(session.id, {"colour": "red"})
    assert unknown.value.field == "colour"


async def test_recent_projects_are_capped_and_deduplicated(
        kv: RedisConnection, db: Database) -> None:
    store = SessionStore(kv, db, recent_limit=3)
    session = await store.open(None)
    for project_id in (1, 2, 3, 4, 2, 2):
        await store.record_project(session.id, project_id, f"P{project_id}")
    recent = (await store.open(session.id)).data["recentProjects"]
    assert [item["id"] for item in recent] == [2, 4, 3]
    assert recent[0]["name"] == "P2" and recent[0]["openedAt"].endswith("+00:00")
    await store.record_project(session.id, 2, "P2 renamed")  # saved under a new name
    assert (await store.open(session.id)).data["recentProjects"][0]["name"] == "P2 renamed"
    await store.record_project(str(uuid.uuid4()), 9, "nobody's")  # unknown session: no-op


async def test_short_ttl_expires_everywhere(kv: RedisConnection, db: Database) -> None:
    store = SessionStore(kv, db, ttl=0.3)
    session = await store.open(None)
    await asyncio.sleep(0.45)
    assert await kv.run(lambda r: r.exists(f"session:{session.id}")) == 0
    assert (await store.open(session.id)).created, "expired in PostgreSQL too"
    assert await store.cleanup() == 1
    assert await row(db, session.id) is None


async def test_use_extends_the_session(kv: RedisConnection, db: Database) -> None:
    store = SessionStore(kv, db, ttl=0.6)
    session = await store.open(None)
    for _ in range(9):  # 1.35 s in all: more than twice the TTL
        await asyncio.sleep(0.15)
        assert not (await store.open(session.id)).created
    stored = await row(db, session.id)
    assert stored is not None and stored[1] > 0, "the row was kept alive as well"


async def test_redis_miss_reads_postgres_and_refills_redis(
        kv: RedisConnection, db: Database, redis_server: RedisServer) -> None:
    store = SessionStore(kv, db)
    session = await store.update_settings(None, {"theme": "light"})
    redis_server.flush()
    reopened = await store.open(session.id)
    assert not reopened.created and reopened.data["settings"]["theme"] == "light"
    assert json.loads(await kv.run(lambda r: r.get(f"session:{session.id}"))) == reopened.data


async def test_redis_killed_sessions_served_from_postgres_fast(
        kv: RedisConnection, db: Database, redis_server: RedisServer) -> None:
    store = SessionStore(kv, db)
    sessions = [await store.update_settings(None, {"theme": "dark"}) for _ in range(5)]
    redis_server.stop()
    slowest = 0.0
    for round_ in range(4):
        for session in sessions:
            started = time.perf_counter()
            if round_ == 2:
                reopened = await store.update_settings(session.id, {"language": "ko"})
            else:
                reopened = await store.open(session.id)
            slowest = max(slowest, time.perf_counter() - started)
            assert reopened.id == session.id and reopened.data["settings"]["theme"] == "dark"
        created = await store.open(None)
        assert (await row(db, created.id)) is not None
    assert not kv.available
    # 50 ms is the figure on a quiet machine; on CI's two shared cores the bound only
    # rules out waiting on Redis (a 500 ms connect timeout, or retries).
    assert slowest < 0.4, f"a session call took {slowest * 1000:.1f} ms with Redis down"

    redis_server.start()
    await wait_until_available(kv)
    reopened = await store.open(sessions[0].id)
    assert reopened.data["settings"]["language"] == "ko", "the change made while Redis was down"
    cached = await kv.run(lambda r: r.get(f"session:{sessions[0].id}"))
    assert cached is not None and json.loads(cached) == reopened.data, "Redis is used again"


async def test_periodic_cleanup_runs(kv: RedisConnection, db: Database) -> None:
    store = SessionStore(kv, db, ttl=0.05, cleanup_interval=0.1)
    session = await store.open(None)
    store.start()
    try:
        await asyncio.sleep(0.3)
    finally:
        await store.close()
    assert await row(db, session.id) is None
