"""Short-lived, single-use WebSocket tokens.

A browser cannot put an ``Authorization`` header on a WebSocket handshake, and a page on
another origin does not send this server's session cookie. Such a client asks for a
token over HTTP (with its API key, through its own backend) and sends it in the first
WebSocket message. Tokens live ``TTL`` seconds and are spent by their first use; they
are kept in PostgreSQL (hashed), so any node can redeem one another node issued.
"""

from __future__ import annotations

import secrets

from core.access import digest
from core.db.pool import Database

TTL = 60.0

_ISSUE = """
WITH swept AS (DELETE FROM ws_tokens WHERE expires_at < now())
INSERT INTO ws_tokens (token_hash, owner, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))"""
_REDEEM = "DELETE FROM ws_tokens WHERE token_hash = $1 AND expires_at > now() RETURNING owner"


class TokenStore:
    def __init__(self, db: Database, ttl: float = TTL) -> None:
        self._db = db
        self.ttl = ttl

    async def issue(self, owner: str) -> str:
        """A new token acting for ``owner`` (expired ones are swept in the same statement)."""
        token = secrets.token_urlsafe(24)
        async with self._db.acquire() as connection:
            await connection.execute(_ISSUE, digest(token), owner, self.ttl)
        return token

    async def redeem(self, token: str) -> str | None:
        """The owner ``token`` was issued for, spending it; None if unknown, spent or expired."""
        if not 0 < len(token) <= 128:
            return None
        async with self._db.acquire() as connection:
            owner: str | None = await connection.fetchval(_REDEEM, digest(token))
            return owner
