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
        indexes = {r["indexname"] for r in await connection.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'projects'")}
        # The ones a query uses (sql/008_projects_indexes.sql says which and why), no other.
        assert indexes == {"projects_pkey", "idx_projects_owner_updated_at_id", "idx_projects_owner_idempotency_key",
                           "idx_projects_timeline_edits"}
    finally:
        await connection.close()


async def test_concurrent_migrators_apply_each_file_exactly_once(pg_dsn):
    results = await asyncio.gather(*(migrate(pg_dsn) for _ in range(4)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(m.name for m in discover())


async def test_a_failing_file_leaves_nothing_behind(pg_dsn, tmp_path: Path):
    _copy_migrations(tmp_path)
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


async def test_projects_carry_no_row_trigger(migrated_dsn):
    """The write path's statement bumps version and updated_at and writes the project.updated
    event itself (core/projects.py): nothing fires per row."""
    connection = await asyncpg.connect(migrated_dsn)
    try:
        triggers = await connection.fetch(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'projects'::regclass AND NOT tgisinternal")
        assert [row["tgname"] for row in triggers] == []
    finally:
        await connection.close()


async def test_projects_are_vacuumed_after_a_small_share_changed(migrated_dsn):
    connection = await asyncpg.connect(migrated_dsn)
    try:
        options = await connection.fetchval("SELECT reloptions FROM pg_class WHERE oid = 'projects'::regclass")
    finally:
        await connection.close()
    assert {"autovacuum_vacuum_scale_factor=0.01", "autovacuum_vacuum_threshold=1000"} <= set(options)


JOURNAL_QUERY = """
SELECT id FROM projects
WHERE timeline_state->>'currentTime' > '30' AND timeline_state->'edits' @> '[{"type": "trim"}]'"""


async def test_the_journals_jsonb_query_uses_the_edits_index(migrated_dsn):
    """The design journal's query (section 4.1) is served by idx_projects_timeline_edits, and finds
    exactly the rows holding a trim, on a table large enough for the planner to want the index."""
    connection = await asyncpg.connect(migrated_dsn)
    try:
        await connection.execute("""
            INSERT INTO projects (name, video_filename, video_url, timeline_state)
            SELECT 'p' || n, 'a.mp4', '/v', jsonb_build_object(
              'currentTime', 40, 'edits', CASE WHEN n % 500 = 0
                THEN jsonb_build_array(jsonb_build_object('type', 'trim', 'start', 1, 'end', 2))
                ELSE jsonb_build_array(jsonb_build_object('type', 'cut', 'start', n, 'end', n + 1)) END)
            FROM generate_series(1, 20000) n""")
        await connection.execute("ANALYZE projects")
        plan = "\n".join(row[0] for row in await connection.fetch("EXPLAIN " + JOURNAL_QUERY))
        assert "idx_projects_timeline_edits" in plan, plan
        assert len(await connection.fetch(JOURNAL_QUERY)) == 40
    finally:
        await connection.close()


def _copy_migrations(directory: Path) -> None:
    for migration in discover():
        (directory / migration.path.name).write_text(migration.path.read_text())


async def test_a_no_transaction_file_runs_statement_by_statement(pg_dsn, tmp_path: Path):
    _copy_migrations(tmp_path)
    (tmp_path / "900_concurrent.sql").write_text(
        "-- nve: no transaction\n-- a comment; with a semicolon\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_test_name ON projects (name);\n"
        "DROP INDEX CONCURRENTLY IF EXISTS idx_no_such_index;\n")
    assert (await migrate(pg_dsn, tmp_path))[-1] == "900_concurrent"
    assert await migrate(pg_dsn, tmp_path) == []
    connection = await asyncpg.connect(pg_dsn)
    try:
        assert await connection.fetchval("SELECT to_regclass('idx_test_name')") is not None
    finally:
        await connection.close()


async def test_an_interrupted_concurrent_build_is_redone(pg_dsn, tmp_path: Path):
    """A concurrent build that failed leaves an INVALID index; the next run drops and rebuilds it
    (an IF NOT EXISTS alone would keep the broken one for good)."""
    _copy_migrations(tmp_path)
    await migrate(pg_dsn, tmp_path)
    connection = await asyncpg.connect(pg_dsn)
    try:
        await connection.execute("INSERT INTO projects (name, video_filename, video_url) VALUES "
                                  "('same', 'a.mp4', '/v'), ('same', 'b.mp4', '/v')")
        (tmp_path / "900_unique.sql").write_text(
            "-- nve: no transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_test_unique "
            "ON projects (name);\n")
        with pytest.raises(asyncpg.UniqueViolationError):
            await migrate(pg_dsn, tmp_path)
        valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('idx_test_unique')"
        assert await connection.fetchval(valid) is False
        assert await connection.fetchval("SELECT count(*) FROM schema_migrations WHERE version = 900") == 0
        await connection.execute("UPDATE projects SET name = 'other' WHERE video_filename = 'b.mp4'")
        assert await migrate(pg_dsn, tmp_path) == ["900_unique"]
        assert await connection.fetchval(valid) is True
    finally:
        await connection.close()
