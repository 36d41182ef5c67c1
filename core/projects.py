"""Projects in PostgreSQL: validation of the API's input and the queries behind it.

Rows leave PostgreSQL as JSON text (``row_to_json``), already in the contract's snake_case
shape with ISO 8601 timestamps (the pool pins the session time zone to UTC). The server
writes those bytes as they are: no per-row dicts, no re-encoding of ``timeline_state``,
which is what made the 100-row list the slow path elsewhere. Every statement is a
constant string, so asyncpg prepares it once per connection and reuses it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any

import msgspec

from core.db.pool import Database
from core.errors import NotFound, PreconditionFailed, ValidationError
from core.shapes import Named, Obj, Prop, Text
from core.timeline import TIMELINE_STATE

NAME_MAX = 255
FILENAME_MAX = 255
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_ID = 2**31 - 1

_COLUMNS = "id, name, description, video_filename, video_url, timeline_state, version, created_at, updated_at"
_ROW_JSON = f"(SELECT row_to_json(r)::text FROM (SELECT {_COLUMNS}) r)"

_INSERT = f"""
INSERT INTO projects (name, description, video_filename, video_url, timeline_state, owner, idempotency_key)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)
ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id, version, {_ROW_JSON} AS doc"""

_BY_IDEMPOTENCY_KEY = f"SELECT version, {_ROW_JSON} AS doc FROM projects WHERE owner = $1 AND idempotency_key = $2"

_SELECT = f"SELECT version, {_ROW_JSON} AS doc FROM projects WHERE id = $1 AND owner = $2"

_PAGE_FIRST = f"""
SELECT id, updated_at, {_ROW_JSON} AS doc FROM projects WHERE owner = $2
ORDER BY updated_at DESC, id DESC LIMIT $1"""

_PAGE_AFTER = f"""
SELECT id, updated_at, {_ROW_JSON} AS doc FROM projects
WHERE owner = $4 AND (updated_at, id) < ($2, $3)
ORDER BY updated_at DESC, id DESC LIMIT $1"""

# One statement for every combination of fields: a NULL flag leaves the column as it is.
# `$5` is the If-Match version (NULL: unconditional); a stale version updates nothing. The
# statement bumps version (the ETag) and updated_at itself: no trigger does (sql/007).
_UPDATE = f"""
UPDATE projects SET
  name = CASE WHEN $2::boolean THEN $3 ELSE name END,
  description = CASE WHEN $4::boolean THEN $6 ELSE description END,
  timeline_state = CASE WHEN $7::boolean THEN $8::jsonb ELSE timeline_state END,
  version = version + 1, updated_at = now()
WHERE id = $1 AND owner = $9 AND ($5::integer IS NULL OR version = $5)
RETURNING version, {_ROW_JSON} AS doc"""

_DELETE = "DELETE FROM projects WHERE id = $1 AND owner = $2"

_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Document:
    """One project as JSON bytes, with the version used for its ETag."""

    version: int
    json: bytes


@dataclass(frozen=True, slots=True)
class Page:
    json: bytes
    next_cursor: str | None


# -- input validation ------------------------------------------------------------------

NEW_PROJECT = Named("NewProject", Obj({
    "name": Prop(Text(max_length=NAME_MAX, non_empty=True), required=True),
    "description": Prop(Text(), nullable=True),
    "videoFilename": Prop(Text(max_length=FILENAME_MAX, non_empty=True), required=True),
    "videoUrl": Prop(Text(non_empty=True), required=True),
    "timelineState": Prop(TIMELINE_STATE, nullable=True, description="Absent or null: an empty timeline"),
}, missing="together"))

PROJECT_CHANGES = Named("ProjectChanges", Obj({
    "name": Prop(Text(max_length=NAME_MAX, non_empty=True)),
    "description": Prop(Text(), nullable=True),
    "timelineState": Prop(TIMELINE_STATE),
}))


def _checked(shape: Named, body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    checked: dict[str, Any] = shape.check(body, "")
    return checked


@dataclass(frozen=True, slots=True)
class NewProject:
    name: str
    description: str | None
    video_filename: str
    video_url: str
    timeline_state: dict[str, Any]

    @classmethod
    def from_body(cls, body: object) -> NewProject:
        body = _checked(NEW_PROJECT, body)
        timeline = body.get("timelineState")
        return cls(name=body["name"], description=body.get("description"), video_filename=body["videoFilename"],
                   video_url=body["videoUrl"], timeline_state={} if timeline is None else timeline)


@dataclass(frozen=True, slots=True)
class ProjectChanges:
    """The fields a PUT gives; absent ones stay as they are."""

    name: str | None = None
    has_name: bool = False
    description: str | None = None
    has_description: bool = False
    timeline_state: dict[str, Any] | None = None
    has_timeline: bool = False

    @classmethod
    def from_body(cls, body: object) -> ProjectChanges:
        body = _checked(PROJECT_CHANGES, body)
        return cls(name=body.get("name"), has_name="name" in body,
                   description=body.get("description"), has_description="description" in body,
                   timeline_state=body.get("timelineState"), has_timeline="timelineState" in body)


# -- cursors ---------------------------------------------------------------------------

def encode_cursor(updated_at: dt.datetime, project_id: int) -> str:
    raw = f"{updated_at.isoformat()}|{project_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, ident = raw.partition("|")
        updated_at = dt.datetime.fromisoformat(stamp)
        if updated_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return updated_at, int(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationError("Query parameter 'cursor' is not a cursor this server issued", "cursor") from None


def page_limit(raw: str | None) -> int:
    """The page size asked for: 50 by default; more than the maximum (200) gets the maximum."""
    if raw is None or raw == "":
        return DEFAULT_PAGE
    digits = raw.lstrip("0")
    # ASCII digits only (str.isdigit() takes "²", which int() refuses), and no int() of a
    # huge string (Python refuses more than 4300 digits): anything past 3 digits is the maximum.
    if not (raw.isascii() and raw.isdigit()) or not digits:
        raise ValidationError("Query parameter 'limit' must be a positive integer", "limit")
    return MAX_PAGE if len(digits) > 3 else min(int(digits), MAX_PAGE)


# -- the store ---------------------------------------------------------------------------

class ProjectStore:
    """The queries, each confined to one owner's rows: another owner's project is "not found"."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, owner: str, project: NewProject, idempotency_key: str | None = None
                     ) -> tuple[Document, bool]:
        """Insert a project; it and True, or (a key ``owner`` used before) that key's project and False."""
        async with self._db.acquire() as connection:
            row = await connection.fetchrow(
                _INSERT, project.name, project.description, project.video_filename,
                project.video_url, _json.encode(project.timeline_state).decode(), owner, idempotency_key,
            )
            created = row is not None
            if not created:
                row = await connection.fetchrow(_BY_IDEMPOTENCY_KEY, owner, idempotency_key)
        if row is None:  # the key's project was deleted between the two statements
            raise NotFound(f"The project created with Idempotency-Key {idempotency_key!r} was deleted")
        return Document(row["version"], row["doc"].encode()), created

    async def get(self, owner: str, project_id: int) -> Document:
        _check_id(project_id)
        async with self._db.acquire() as connection:
            row = await connection.fetchrow(_SELECT, project_id, owner)
        if row is None:
            raise NotFound(f"Project {project_id} not found")
        return Document(row["version"], row["doc"].encode())

    async def page(self, owner: str, limit: int, cursor: str | None) -> Page:
        async with self._db.acquire() as connection:
            if cursor is None:
                rows = await connection.fetch(_PAGE_FIRST, limit + 1, owner)
            else:
                updated_at, after_id = decode_cursor(cursor)
                rows = await connection.fetch(_PAGE_AFTER, limit + 1, updated_at, after_id, owner)
        more = len(rows) > limit
        rows = rows[:limit]
        body = ("[" + ",".join([row["doc"] for row in rows]) + "]").encode()
        next_cursor = encode_cursor(rows[-1]["updated_at"], rows[-1]["id"]) if more else None
        return Page(body, next_cursor)

    async def update(self, owner: str, project_id: int, changes: ProjectChanges,
                     if_version: int | None) -> Document:
        _check_id(project_id)
        timeline = _json.encode(changes.timeline_state).decode() if changes.has_timeline else None
        async with self._db.acquire() as connection:
            row = await connection.fetchrow(
                _UPDATE, project_id, changes.has_name, changes.name, changes.has_description,
                if_version, changes.description, changes.has_timeline, timeline, owner,
            )
            if row is None:
                current = await connection.fetchrow(_SELECT, project_id, owner)
        if row is not None:
            return Document(row["version"], row["doc"].encode())
        if current is None:
            raise NotFound(f"Project {project_id} not found")
        raise PreconditionFailed(
            f"Project {project_id} was changed by someone else (version {current['version']}, "
            f"If-Match named {if_version})", current["doc"].encode(), current["version"])

    async def delete(self, owner: str, project_id: int) -> None:
        _check_id(project_id)
        async with self._db.acquire() as connection:
            status = await connection.execute(_DELETE, project_id, owner)
        if status == "DELETE 0":
            raise NotFound(f"Project {project_id} not found")


def _check_id(project_id: int) -> None:
    if not 1 <= project_id <= MAX_ID:
        raise NotFound(f"Project {project_id} not found")

