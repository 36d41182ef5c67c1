"""Browser sessions: settings and recent projects, in Redis with PostgreSQL behind it.

A session is a UUID v4 (the ``nve_session`` cookie) naming ``{settings, recentProjects}``
(docs/CONTRACT.md section 2, Sessions). It lives for ``ttl`` (1 h) after its last use:

- Redis ``session:{id}`` (in the deployment's namespace, ``NVE_REDIS_PREFIX``) holds the
  data as JSON; every read is a ``GETEX ... PX ttl``, so using a session extends it in the
  same round trip.
- The ``sessions`` table holds a copy, written through on every change. So that a busy
  session does not cost a PostgreSQL write per request, a read served by Redis pushes the
  row's ``expires_at`` forward only once the row's expiry has fallen ``refresh`` (ttl / 12)
  behind; the row thus expires at most that much before the Redis key, never after it.
- When Redis misses (restarted empty, key evicted) or is unavailable, the session is read
  from PostgreSQL (extending ``expires_at`` in the same statement, under the same
  once-per-``refresh`` rule, so an outage does not turn every read into a write) and put
  back in Redis.
- Expired rows are deleted by a periodic task (:meth:`SessionStore.start`).

Settings are validated with msgspec against :class:`SessionSettings`; a bad one raises
:class:`core.errors.ValidationError` naming the field.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

import msgspec

from core.db.pool import Database
from core.errors import Unavailable, ValidationError
from core.kv.connection import KvUnavailable, RedisConnection
from core.tasks import cancel_and_wait

log = logging.getLogger("nve.sessions")


class SessionSettings(msgspec.Struct, forbid_unknown_fields=True):
    """What the editor UI lets a user set; every field has a default."""

    theme: Literal["system", "light", "dark"] = "system"
    language: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
                                          max_length=35)] = "en"
    volume: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    muted: bool = False
    autoSave: bool = True
    snapToMarkers: bool = True
    timelineZoom: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 1.0


DEFAULT_SETTINGS: dict[str, Any] = msgspec.to_builtins(SessionSettings())

_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`")

_UPSERT = """
INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2::text::jsonb, now() + $3::interval)
ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at
RETURNING expires_at
"""
_TOUCH = """
UPDATE sessions SET expires_at = now() + $2::interval WHERE id = $1 AND expires_at > now()
RETURNING data::text, expires_at
"""
_READ = "SELECT data::text, expires_at FROM sessions WHERE id = $1 AND expires_at > now()"


def validate_settings(current: dict[str, Any], patch: Any) -> dict[str, Any]:
    """``current`` with the fields of ``patch`` replaced, validated as a whole."""
    if not isinstance(patch, dict):
        raise ValidationError("Settings must be a JSON object")
    try:
        settings = msgspec.convert({**current, **patch}, SessionSettings)
    except msgspec.ValidationError as error:
        message = str(error)
        unknown = _UNKNOWN.match(message)
        if unknown:
            field = unknown["field"]
            raise ValidationError(f"Unknown setting '{field}'", field=field) from None
        located = _PATH.search(message)
        field = located["path"] if located else ""
        reason = message[: located.start()] if located else message
        raise ValidationError(f"Invalid setting '{field}': {reason}", field=field or None) from None
    return cast("dict[str, Any]", msgspec.to_builtins(settings))


def parse_session_id(value: str | None) -> str | None:
    """``value`` if it is a canonical UUID v4 string, else None (a forged or stale cookie)."""
    if not value:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return value if parsed.version == 4 and str(parsed) == value else None


@dataclass(slots=True)
class Session:
    id: str
    data: dict[str, Any]
    created: bool = False
    """True when this request started the session (the client sent no valid cookie)."""


class SessionStore:
    """Sessions in Redis, written through to PostgreSQL; see the module docstring."""

    def __init__(
        self,
        kv: RedisConnection,
        db: Database,
        *,
        ttl: float = 3600.0,
        recent_limit: int = 10,
        cleanup_interval: float = 600.0,
        memo_size: int = 10_000,
    ) -> None:
        self._kv = kv
        self._db = db
        self.ttl = ttl
        self._ttl_ms = max(1, round(ttl * 1000))
        self._interval = datetime.timedelta(seconds=ttl)
        self._refresh = ttl / 12
        self._recent_limit = recent_limit
        self._cleanup_interval = cleanup_interval
        # id -> epoch second the row's expires_at is known to reach (bounded, oldest out).
        self._persisted: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._memo_size = memo_size
        self._cleaner: asyncio.Task[None] | None = None

    def key(self, session_id: str) -> str:
        return self._kv.key(f"session:{session_id}")

    async def open(self, cookie: str | None) -> Session:
        """The session ``cookie`` names, extended; a new one if it is missing or expired."""
        session = await self._find_or_start(cookie)
        if session.created:
            await self._save(session)
        return session

    async def find(self, cookie: str | None) -> str | None:
        """The id of the live session ``cookie`` names (extending it), None if there is none."""
        session_id = parse_session_id(cookie)
        if session_id is None or await self._load(session_id) is None:
            return None
        return session_id

    async def update_settings(self, cookie: str | None, patch: Any) -> Session:
        """Apply a partial settings object (validated first: nothing is written if it fails)."""
        session = await self._find_or_start(cookie)
        session.data["settings"] = validate_settings(session.data["settings"], patch)
        await self._save(session)
        return session

    async def record_project(self, cookie: str | None, project_id: int, name: str) -> None:
        """Put a project first in the session's recent list, best effort.

        Nothing happens without a live session, when the project already heads the list
        under that name (re-opening it changes nothing worth a write), or when the stores
        cannot be reached: the request that opened the project must not fail over this.
        """
        session_id = parse_session_id(cookie)
        if session_id is None:
            return
        try:
            data = await self._load(session_id)
            if data is None:
                return
            recent = data["recentProjects"]
            if recent and recent[0].get("id") == project_id and recent[0].get("name") == name:
                return
            opened = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            entry = {"id": project_id, "name": name, "openedAt": opened}
            others = [item for item in recent if item.get("id") != project_id]
            data["recentProjects"] = [entry, *others][: self._recent_limit]
            await self._save(Session(session_id, data))
        except Unavailable:
            log.debug("recent project %s not recorded: stores unavailable", project_id)

    async def cleanup(self) -> int:
        """Delete expired rows now; how many went."""
        async with self._db.acquire() as connection:
            status = await connection.execute("DELETE FROM sessions WHERE expires_at <= now()")
        return int(status.rsplit(" ", 1)[-1])

    def start(self) -> None:
        """Begin deleting expired rows every ``cleanup_interval`` seconds."""
        if self._cleaner is None:
            self._cleaner = asyncio.get_running_loop().create_task(self._clean_periodically())

    async def close(self) -> None:
        await cancel_and_wait(self._cleaner)
        self._cleaner = None

    async def _find_or_start(self, cookie: str | None) -> Session:
        """The live session ``cookie`` names, else a new one (not stored yet)."""
        session_id = parse_session_id(cookie)
        if session_id is not None:
            data = await self._load(session_id)
            if data is not None:
                return Session(session_id, data)
        data = {"settings": dict(DEFAULT_SETTINGS), "recentProjects": []}
        return Session(str(uuid.uuid4()), data, created=True)

    async def _load(self, session_id: str) -> dict[str, Any] | None:
        """The session's data, its lifetime extended; None if it does not exist (any more)."""
        key = self.key(session_id)
        try:
            # Bytes: the client does not decode replies (core/kv/client.py).
            raw = cast("bytes | None", await self._kv.run(lambda client: client.getex(key, px=self._ttl_ms)))
        except KvUnavailable:
            raw = None
        if raw is not None:
            await self._keep_row_alive(session_id, raw)
            return msgspec.json.decode(raw, type=dict[str, Any])
        async with self._db.acquire() as connection:
            if self._row_is_fresh(session_id):
                row = await connection.fetchrow(_READ, session_id)
            else:
                row = await connection.fetchrow(_TOUCH, session_id, self._interval)
        if row is None:
            return None
        self._remember(session_id, row["expires_at"])
        with contextlib.suppress(KvUnavailable):
            text = row["data"]
            await self._kv.run(lambda client: client.set(key, text, px=self._ttl_ms))
        return msgspec.json.decode(row["data"], type=dict[str, Any])

    async def _save(self, session: Session) -> None:
        """Write through: the row first (the durable copy), then Redis. Either may be down."""
        document = msgspec.json.encode(session.data).decode()
        stored = False
        try:
            async with self._db.acquire() as connection:
                expires_at = await connection.fetchval(
                    _UPSERT, session.id, document, self._interval)
            self._remember(session.id, expires_at)
            stored = True
        except Unavailable:
            # Forget what the row held so the next Redis hit writes it again.
            self._persisted.pop(session.id, None)
        try:
            await self._kv.run(
                lambda client: client.set(self.key(session.id), document, px=self._ttl_ms))
            stored = True
        except KvUnavailable:
            # Redis may hold (or come back with) the copy this change replaces.
            await self._kv.forget(self.key(session.id))
        if not stored:
            raise Unavailable("Sessions cannot be stored right now; try again shortly")

    async def _keep_row_alive(self, session_id: str, raw: bytes) -> None:
        """Push the row's expiry along after a Redis hit, at most once per ``refresh``."""
        if self._row_is_fresh(session_id):
            return
        try:
            async with self._db.acquire() as connection:
                expires_at = await connection.fetchval(
                    _UPSERT, session_id, raw.decode(), self._interval)
        except Unavailable:
            return
        self._remember(session_id, expires_at)

    def _row_is_fresh(self, session_id: str) -> bool:
        """Whether the row's expiry was pushed along within the last ``refresh`` seconds."""
        return self._persisted.get(session_id, 0.0) >= time.time() + self.ttl - self._refresh

    def _remember(self, session_id: str, expires_at: datetime.datetime) -> None:
        self._persisted[session_id] = expires_at.timestamp()
        self._persisted.move_to_end(session_id)
        while len(self._persisted) > self._memo_size:
            self._persisted.popitem(last=False)

    async def _clean_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_interval)
            try:
                removed = await self.cleanup()
            except Unavailable:
                continue
            if removed:
                log.info("deleted %d expired sessions", removed)
