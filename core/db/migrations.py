"""Apply ``sql/NNN_*.sql`` in order, once each, safely from several nodes at once.

A session-level advisory lock serialises concurrent migrators: the second node to start
waits for the first, then finds every file already recorded in ``schema_migrations`` and
applies nothing. Each file runs in its own transaction together with its bookkeeping row,
so a failing file leaves neither half its changes nor a record claiming it ran.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger("nve.migrate")

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
# An arbitrary constant shared by every nve process: the advisory lock's key.
LOCK_KEY = 0x6E76_6D69_6772
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path


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
    await connection.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
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
            async with connection.transaction():
                await connection.execute(migration.path.read_text(encoding="utf-8"))
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version, migration.name,
                )
            log.info("applied migration %s", migration.name)
            applied.append(migration.name)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied
