"""The Redis-backed services of one process, built and stopped together (``app.kv``).

One :class:`~core.kv.connection.RedisConnection` (one breaker, one pool) is shared by the
session store, the metadata cache and the rate limiter, so one outage is detected once and
every caller fails over at the same moment; it carries the deployment's key prefix
(``NVE_REDIS_PREFIX``), so all three name their keys in the same namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.db.pool import Database
from core.kv.connection import RedisConnection
from core.kv.metadata_cache import MetadataCache, Probe
from core.kv.ratelimit import RateLimiter
from core.sessions import SessionStore


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests allowed per ``window`` seconds, per client IP and per session."""

    writes: int = 120
    """Mutating JSON endpoints (projects, edits, settings, job control)."""
    uploads: int = 20
    """``POST /api/upload`` and the tus endpoints."""
    window: float = 60.0


class KvServices:
    """The connection and everything built on it; :meth:`start` / :meth:`close` with the app."""

    def __init__(
        self,
        redis_url: str,
        db: Database,
        media_dir: Path,
        probe: Probe,
        *,
        key_prefix: str = "",
        session_ttl: float = 3600.0,
        metadata_ttl: float = 3600.0,
        limits: RateLimits = RateLimits(),
    ) -> None:
        self.connection = RedisConnection(redis_url, prefix=key_prefix)
        self.sessions = SessionStore(self.connection, db, ttl=session_ttl)
        self.metadata = MetadataCache(self.connection, media_dir, probe, ttl=metadata_ttl)
        self.limiter = RateLimiter(self.connection)
        self.limits = limits

    async def start(self) -> None:
        """Begin the periodic session cleanup. Redis itself is connected lazily, on first use."""
        self.sessions.start()

    async def close(self) -> None:
        await self.sessions.close()
        await self.limiter.flush()  # this node's last counts, before the connection goes
        await self.connection.close()

    async def readiness(self) -> dict[str, object]:
        """What ``/readyz`` reports for Redis (it never gates readiness: Redis is optional)."""
        up = await self.connection.ping()
        return {"state": "up" if up else "down", "breaker": self.connection.breaker.state.value}
