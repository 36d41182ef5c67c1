"""API keys for embedding backends: made and revoked by ``nve apikey``, checked per request.

A key is ``nve_`` + 43 url-safe characters (256 random bits). Only its SHA-256 is stored
(with the first characters, ``prefix``, so an operator can tell keys apart): a leaked
table grants nothing, and because the key has full entropy a fast hash is enough, so a
check costs one indexed lookup and no deliberate slowness. The key itself is shown once,
when it is created.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from core.access import digest, owners
from core.db.pool import Database

KEY_PREFIX = "nve_"
SHOWN_PREFIX = 12
"""Characters of a key kept in clear (``nve_`` and 8 more) to tell keys apart in a listing."""

_INSERT = """
INSERT INTO api_keys (tenant, label, key_hash, prefix) VALUES ($1, $2, $3, $4)
RETURNING id, tenant, label, prefix, created_at, revoked_at"""
_LIST = "SELECT id, tenant, label, prefix, created_at, revoked_at FROM api_keys ORDER BY id"
_REVOKE = """
UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL
RETURNING id, tenant, label, prefix, created_at, revoked_at"""
_TENANT_OF = "SELECT tenant FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    tenant: str
    label: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, tenant: str, label: str | None = None) -> tuple[str, ApiKey]:
        """A new key for ``tenant``: the key (shown once, never stored) and its record."""
        owners.tenant(tenant)  # validates the name
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        async with self._db.acquire() as connection:
            row = await connection.fetchrow(_INSERT, tenant, label, digest(key), key[:SHOWN_PREFIX])
        assert row is not None, "INSERT ... RETURNING returns the row it inserted"
        return key, ApiKey(**dict(row))

    async def list(self) -> list[ApiKey]:
        async with self._db.acquire() as connection:
            rows = await connection.fetch(_LIST)
        return [ApiKey(**dict(row)) for row in rows]

    async def revoke(self, key_id: int) -> ApiKey | None:
        """Revoke key ``key_id`` at once (every node's next check refuses it); None if unknown or revoked."""
        async with self._db.acquire() as connection:
            row = await connection.fetchrow(_REVOKE, key_id)
        return ApiKey(**dict(row)) if row is not None else None

    async def owner_of(self, key: str) -> str | None:
        """The owner id a presented key acts for; None when it is unknown or revoked."""
        if not key.startswith(KEY_PREFIX) or len(key) > 128:
            return None
        async with self._db.acquire() as connection:
            name = await connection.fetchval(_TENANT_OF, digest(key))
        return owners.tenant(name) if name is not None else None
