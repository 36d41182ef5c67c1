"""The migration runner against real databases: order, idempotence, concurrency, atomicity."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from core.db.migrations import SQL_DIR, discover, migrate


async def test_applies_every_file_once_in_order(pg_dsn):
    applied = await migrate(pg_dsn)
    assert applied == [m.name for m in discover()]
    assert applied[0] == "001_initial_schema"
    assert await migrate(pg_dsn) == []
    connection = await asyncpg.connect(pg_dsn)
    try:
        versions = [r["version"] for r in await connection.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [m.version for m in discover()]
        indexes = {r["indexname"] for r in await connection.fetch("SELECT indexname FROM pg_indexes")}
        assert {"idx_projects_created_at", "idx_projects_updated_at", "idx_timeline_state",
                "idx_sessions_expires_at"} <= indexes
    finally:
        await connection.close()


async def test_concurrent_migrators_apply_each_file_exactly_once(pg_dsn):
    results = await asyncio.gather(*(migrate(pg_dsn) for _ in range(4)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(m.name for m in discover())


async def test_a_failing_file_leaves_nothing_behind(pg_dsn, tmp_path: Path):
    for migration in discover():
        (tmp_path / migration.path.name).write_text(migration.path.read_text())
    (tmp_path / "900_broken.sql").write_text("CREATE TABLE half_done (id int); SELECT no_such_function();")
    with pytest.raises(asyncpg.PostgresError):
        await migrate(pg_dsn, tmp_path)
    connection = await asyncpg.connect(pg_dsn)
    try:
        assert await connection.fetchval("SELECT to_regclass('half_done')") is None
        assert await connection.fetchval("SELECT count(*) FROM schema_migrations WHERE version = 900") == 0
        assert await connection.fetchval("SELECT count(*) FROM schema_migrations") == len(discover())
    finally:
        await connection.close()


def test_file_names_are_checked(tmp_path: Path):
    (tmp_path / "1_bad.sql").write_text("")
    with pytest.raises(ValueError, match="NNN_name"):
        discover(tmp_path)
    (tmp_path / "1_bad.sql").unlink()
    (tmp_path / "001_a.sql").write_text("")
    (tmp_path / "001_b.sql").write_text("")
    with pytest.raises(ValueError, match="share version"):
        discover(tmp_path)


def test_the_repository_migrations_are_well_formed():
    assert [m.version for m in discover(SQL_DIR)] == list(range(1, len(discover(SQL_DIR)) + 1))


async def test_updated_at_trigger_and_version(migrated_dsn):
    connection = await asyncpg.connect(migrated_dsn)
    try:
        row = await connection.fetchrow(
            "INSERT INTO projects (name, video_filename, video_url) VALUES ('a', 'a.mp4', '/v') "
            "RETURNING id, version, updated_at")
        updated = await connection.fetchrow(
            "UPDATE projects SET name = 'b' WHERE id = $1 RETURNING version, updated_at", row["id"])
        assert updated["version"] == row["version"] + 1
        assert updated["updated_at"] > row["updated_at"]
    finally:
        await connection.close()
