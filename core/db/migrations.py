"""Apply ``sql/NNN_*.sql`` in order, once each, safely from several nodes at once.

A session-level advisory lock serialises concurrent migrators: the second node to start
waits for the first (polling: see :func:`apply_pending`), then finds every file already
recorded in ``schema_migrations`` and applies nothing. Each file runs in its own
transaction together with its bookkeeping row, so a failing file leaves neither half its
changes nor a record claiming it ran.

Except a file whose first line is ``-- nve: no transaction``: ``CREATE INDEX CONCURRENTLY``
(which builds an index without blocking writes to a large, live table) cannot run inside
a transaction. Such a file holds plain statements, each ending with ``;`` at the end of a
line and each safe to run again (``IF NOT EXISTS`` / ``IF EXISTS``); they run one by one
and the file is recorded after the last. A run that stopped half-way is finished by the
next: an index whose concurrent build failed is left INVALID by PostgreSQL, and so is
dropped here before its ``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` runs again (else that
statement would skip it and leave the broken index for good).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger("nve.migrate")

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
# An arbitrary constant shared by every nve process: the advisory lock's key.
LOCK_KEY = 0x6E76_6D69_6772
LOCK_POLL = 0.1
"""Seconds between a waiting migrator's attempts to take the lock."""
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
NO_TRANSACTION = "-- nve: no transaction"
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)
_CONCURRENT_INDEX = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\w+)",
                               re.IGNORECASE)
_INVALID_INDEX = """
SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE NOT i.indisvalid AND c.relname = any($1::text[]) AND pg_catalog.pg_table_is_visible(c.oid)"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def transactional(self) -> bool:
        """False for a file that must run outside a transaction (module docstring)."""
        with self.path.open(encoding="utf-8") as file:
            return file.readline().strip() != NO_TRANSACTION

    def statements(self) -> list[str]:
        """The statements of a no-transaction file, in order."""
        text = self.path.read_text(encoding="utf-8")
        return [part.strip() for part in _STATEMENT_END.split(text) if _sql(part)]


def discover(directory: Path = SQL_DIR) -> list[Migration]:
    """The migration files in ``directory``, in version order; a duplicate version is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name {path.name!r} is not NNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations share version {version:03d}")
        found[version] = Migration(version, path.stem, path)
    return [found[v] for v in sorted(found)]


async def migrate(dsn: str, directory: Path = SQL_DIR) -> list[str]:
    """Apply every pending migration; return the names of those applied by this call."""
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        return await apply_pending(connection, discover(directory))
    finally:
        await connection.close()


async def apply_pending(connection: asyncpg.Connection[asyncpg.Record], migrations: list[Migration]) -> list[str]:
    applied: list[str] = []
    # Polled, not waited for: a session blocked in pg_advisory_lock() is a running statement,
    # and CREATE INDEX CONCURRENTLY waits for every running transaction to end, so the
    # migrator holding the lock and one waiting for it would deadlock.
    while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
        await asyncio.sleep(LOCK_POLL)
    try:
        await connection.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())"""
        )
        done = {row["version"] for row in await connection.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations:
            if migration.version in done:
                continue
            if migration.transactional:
                async with connection.transaction():
                    await connection.execute(migration.path.read_text(encoding="utf-8"))
                    await _record(connection, migration)
            else:
                await _apply_one_by_one(connection, migration)
            log.info("applied migration %s", migration.name)
            applied.append(migration.name)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied


async def _record(connection: asyncpg.Connection[asyncpg.Record], migration: Migration) -> None:
    await connection.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                             migration.version, migration.name)


async def _apply_one_by_one(connection: asyncpg.Connection[asyncpg.Record], migration: Migration) -> None:
    """Run a no-transaction file statement by statement (module docstring), then record it."""
    statements = migration.statements()
    names = [match.group(1) for statement in statements for match in _CONCURRENT_INDEX.finditer(statement)]
    for row in await connection.fetch(_INVALID_INDEX, names):
        log.warning("dropping index %s, left invalid by an interrupted build", row["relname"])
        await connection.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{row["relname"]}"')
    for statement in statements:
        await connection.execute(statement)
    await _record(connection, migration)


def _sql(text: str) -> bool:
    """Whether ``text`` holds anything but blank lines and ``--`` comments."""
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())
