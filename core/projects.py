"""Projects in PostgreSQL: validation of the API's input and the queries behind it.

Rows leave PostgreSQL as JSON text (``row_to_json``), already in the contract's snake_case
shape with ISO 8601 timestamps (the pool pins the session time zone to UTC). The server
writes those bytes as they are: no per-row dicts, no re-encoding of ``timeline_state``,
which is what made the 100-row list the slow path elsewhere. Every statement is a
constant string, so asyncpg prepares it once per connection and reuses it. The gets by id,
the creations and the updates of one event-loop turn each go to PostgreSQL as one statement
(core/batch.py), and identical pages of a turn are read once; a turn with a single one uses
the one-row statement, which PostgreSQL runs faster than the array form for one row.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg
import msgspec

from core.batch import TurnBatcher
from core.db.pool import Database, DbConnection
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

# The creations of one loop turn as one statement (ProjectStore.create): each row's id is drawn
# first (input is read twice, so PostgreSQL computes it once), so each caller finds its own row
# among those inserted by the ordinal of its parameters; a row skipped for its idempotency key
# (used before, or earlier in the same batch) is not among them.
_INSERT_MANY = f"""
WITH input AS (
  SELECT nextval('projects_id_seq') AS new_id, u.*
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY
       AS u(new_name, new_description, new_video_filename, new_video_url, new_timeline, new_owner, new_key, ord)
), inserted AS (
  INSERT INTO projects (id, name, description, video_filename, video_url, timeline_state, owner, idempotency_key)
  SELECT new_id, new_name, new_description, new_video_filename, new_video_url, new_timeline::jsonb, new_owner, new_key
  FROM input ORDER BY ord
  ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id, version, {_ROW_JSON} AS doc)
SELECT input.ord, inserted.version, inserted.doc FROM inserted JOIN input ON input.new_id = inserted.id"""

_BY_IDEMPOTENCY_KEY = f"SELECT version, {_ROW_JSON} AS doc FROM projects WHERE owner = $1 AND idempotency_key = $2"

_SELECT = f"SELECT version, {_ROW_JSON} AS doc FROM projects WHERE id = $1 AND owner = $2"

# GET by id, batched (see ProjectStore.get): each caller's owner is checked against the row's.
_SELECT_MANY = f"SELECT id, owner, version, {_ROW_JSON} AS doc FROM projects WHERE id = ANY($1::integer[])"

_PAGE_FIRST = f"""
SELECT id, updated_at, {_ROW_JSON} AS doc FROM projects WHERE owner = $2
ORDER BY updated_at DESC, id DESC LIMIT $1"""

_PAGE_AFTER = f"""
SELECT id, updated_at, {_ROW_JSON} AS doc FROM projects
WHERE owner = $4 AND (updated_at, id) < ($2, $3)
ORDER BY updated_at DESC, id DESC LIMIT $1"""

# One statement for every combination of fields: a NULL flag leaves the column as it is.
# `$5` is the If-Match version (NULL: unconditional); a stale version updates nothing. The
# statement bumps version (the ETag) and updated_at itself, and writes the project.updated
# webhook event (sql/005's nve_webhook_emit) when an enabled endpoint of the owner subscribes
# to it: no trigger does any of it (sql/007, sql/011). The EXISTS depends on parameters only,
# so it runs once, as one index probe, and an owner without webhooks pays nothing more.
_UPDATE = f"""
WITH updated AS (
  UPDATE projects SET
    name = CASE WHEN $2::boolean THEN $3 ELSE name END,
    description = CASE WHEN $4::boolean THEN $6 ELSE description END,
    timeline_state = CASE WHEN $7::boolean THEN $8::jsonb ELSE timeline_state END,
    version = version + 1, updated_at = now()
  WHERE id = $1 AND owner = $9 AND ($5::integer IS NULL OR version = $5)
  RETURNING id, version, {_ROW_JSON} AS doc)
SELECT version, doc,
  (SELECT nve_webhook_emit($9, 'project.updated', id::text, jsonb_build_object('id', id, 'version', version))
   WHERE EXISTS (SELECT FROM webhook_endpoints
                 WHERE owner = $9 AND disabled_at IS NULL AND 'project.updated' = ANY (events))) AS event
FROM updated"""

# The updates of one loop turn as one statement (ProjectStore.update): _UPDATE per row, its
# parameters as arrays, one row each (ids distinct, ascending: concurrent batches lock their rows in
# one order). u's columns are named apart from projects' so that _ROW_JSON reads the project's.
_UPDATE_MANY = f"""
WITH updated AS (
  UPDATE projects SET
    name = CASE WHEN u.set_name THEN u.new_name ELSE name END,
    description = CASE WHEN u.set_description THEN u.new_description ELSE description END,
    timeline_state = CASE WHEN u.set_timeline THEN u.new_timeline::jsonb ELSE timeline_state END,
    version = version + 1, updated_at = now()
  FROM unnest($1::integer[], $2::text[], $3::boolean[], $4::text[], $5::boolean[], $6::text[],
              $7::boolean[], $8::text[], $9::integer[])
       AS u(project_id, project_owner, set_name, new_name, set_description, new_description,
            set_timeline, new_timeline, if_version)
  WHERE id = u.project_id AND owner = u.project_owner AND (u.if_version IS NULL OR version = u.if_version)
  RETURNING id, owner, version, {_ROW_JSON} AS doc)
SELECT updated.id, updated.version, updated.doc,
  (SELECT nve_webhook_emit(updated.owner, 'project.updated', updated.id::text,
                           jsonb_build_object('id', updated.id, 'version', updated.version))
   WHERE EXISTS (SELECT FROM webhook_endpoints e WHERE e.owner = updated.owner AND e.disabled_at IS NULL
                 AND 'project.updated' = ANY (e.events))) AS event
FROM updated"""

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


_PageKey = tuple[str, int, "tuple[dt.datetime, int] | None"]
"""A page's owner, limit and the (updated_at, id) it starts after (None: the first page)."""


class _Creation(NamedTuple):
    """One creation, in _INSERT's parameter order (and _INSERT_MANY's columns)."""

    name: str
    description: str | None
    video_filename: str
    video_url: str
    timeline: str
    owner: str
    idempotency_key: str | None


class _Update(NamedTuple):
    """One update, in _UPDATE_MANY's column order (its parameters, row by row)."""

    project_id: int
    owner: str
    has_name: bool
    name: str | None
    has_description: bool
    description: str | None
    has_timeline: bool
    timeline: str | None
    if_version: int | None

    def single(self) -> tuple[object, ...]:
        """Its parameters for _UPDATE (the statement of one update)."""
        return (self.project_id, self.has_name, self.name, self.has_description, self.if_version,
                self.description, self.has_timeline, self.timeline, self.owner)


# -- the store ---------------------------------------------------------------------------

class ProjectStore:
    """The queries, each confined to one owner's rows: another owner's project is "not found"."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lookups: TurnBatcher[tuple[str, int], Document | None] = TurnBatcher(self._get_many)
        self._creations: TurnBatcher[_Creation, Document | None] = TurnBatcher(self._create_many)
        self._updates: TurnBatcher[_Update, Document | None] = TurnBatcher(self._update_many)
        self._pages: TurnBatcher[_PageKey, Page] = TurnBatcher(self._page_many)

    async def create(self, owner: str, project: NewProject, idempotency_key: str | None = None
                     ) -> tuple[Document, bool]:
        """Insert a project; it and True, or (a key ``owner`` used before) that key's project and False.

        The creations of one event-loop turn go to PostgreSQL as one statement and one commit
        (:meth:`_create_many`), each answered after its commit.
        """
        row = await self._creations(_Creation(
            project.name, project.description, project.video_filename, project.video_url,
            _json.encode(project.timeline_state).decode(), owner, idempotency_key))
        if row is not None:
            return row, True
        async with self._db.acquire() as connection:
            found = await connection.fetchrow(_BY_IDEMPOTENCY_KEY, owner, idempotency_key)
        if found is None:  # the key's project was deleted between the two statements
            raise NotFound(f"The project created with Idempotency-Key {idempotency_key!r} was deleted")
        return Document(found["version"], found["doc"].encode()), False

    async def _create_many(self, creations: list[_Creation]) -> list[Document | None]:
        """Each creation's row, or None where its idempotency key was used before (by an earlier
        creation of the same batch too: the first of them is inserted)."""
        async with self._db.acquire() as connection:
            if len(creations) == 1:
                row = await connection.fetchrow(_INSERT, *creations[0])
                return [None if row is None else Document(row["version"], row["doc"].encode())]
            rows = await connection.fetch(_INSERT_MANY, *zip(*creations))
        done: list[Document | None] = [None] * len(creations)
        for row in rows:
            done[row["ord"] - 1] = Document(row["version"], row["doc"].encode())
        return done

    async def get(self, owner: str, project_id: int) -> Document:
        """``owner``'s project ``project_id``.

        The gets of one event-loop turn share one statement and one pooled connection
        (core/batch.py): under load that is one round trip for many requests, and the
        statement starts after all of them arrived, so each sees every write finished before it.
        """
        _check_id(project_id)
        doc = await self._lookups((owner, project_id))
        if doc is None:
            raise NotFound(f"Project {project_id} not found")
        return doc

    async def _get_many(self, keys: list[tuple[str, int]]) -> list[Document | None]:
        async with self._db.acquire() as connection:
            rows = await connection.fetch(_SELECT_MANY, [project_id for _, project_id in keys])
        found = {row["id"]: row for row in rows}
        docs: list[Document | None] = []
        for owner, project_id in keys:
            row = found.get(project_id)
            # Another owner's project is not found, as if the statement had said "AND owner = $2".
            if row is None or row["owner"] != owner:
                docs.append(None)
            else:
                docs.append(Document(row["version"], row["doc"].encode()))
        return docs

    async def page(self, owner: str, limit: int, cursor: str | None) -> Page:
        """``limit`` of ``owner``'s projects, the most recently updated first, from ``cursor`` on.

        The same page asked for several times in one event-loop turn (clients polling one
        list) is read once, after all of them arrived, and the pages of a turn share one pooled
        connection: each caller still sees every write finished before it asked.
        """
        decoded = decode_cursor(cursor) if cursor is not None else None  # a bad cursor fails its caller only
        return await self._pages((owner, limit, decoded))

    async def _page_many(self, keys: list[_PageKey]) -> list[Page]:
        pages: dict[_PageKey, Page] = {}
        async with self._db.acquire() as connection:
            for key in keys:
                if key not in pages:
                    pages[key] = await self._read_page(connection, *key)
        return [pages[key] for key in keys]

    @staticmethod
    async def _read_page(connection: DbConnection, owner: str, limit: int,
                         after: tuple[dt.datetime, int] | None) -> Page:
        if after is None:
            rows = await connection.fetch(_PAGE_FIRST, limit + 1, owner)
        else:
            rows = await connection.fetch(_PAGE_AFTER, limit + 1, after[0], after[1], owner)
        more = len(rows) > limit
        rows = rows[:limit]
        body = ("[" + ",".join([row["doc"] for row in rows]) + "]").encode()
        next_cursor = encode_cursor(rows[-1]["updated_at"], rows[-1]["id"]) if more else None
        return Page(body, next_cursor)

    async def update(self, owner: str, project_id: int, changes: ProjectChanges,
                     if_version: int | None) -> Document:
        """Apply ``changes`` to ``owner``'s project (only if its version is ``if_version``, unless None).

        The updates of one event-loop turn go to PostgreSQL as one statement and one commit
        (:meth:`_update_many`); each is still all or nothing, and answered after its commit.
        """
        _check_id(project_id)
        timeline = _json.encode(changes.timeline_state).decode() if changes.has_timeline else None
        done = await self._updates(_Update(project_id, owner, changes.has_name, changes.name,
                                           changes.has_description, changes.description,
                                           changes.has_timeline, timeline, if_version))
        if done is not None:
            return done
        async with self._db.acquire() as connection:
            current = await connection.fetchrow(_SELECT, project_id, owner)
        if current is None:
            raise NotFound(f"Project {project_id} not found")
        raise PreconditionFailed(
            f"Project {project_id} was changed by someone else (version {current['version']}, "
            f"If-Match named {if_version})", current["doc"].encode(), current["version"])

    async def _update_many(self, updates: list[_Update]) -> list[Document | None]:
        """Each update's new row, or None where it changed nothing (no such row of that owner, or
        a stale ``if_version``).

        One statement for the first update of each project, in ascending id order (two batches
        never wait on each other's rows in opposite orders); a second update of a project in the
        same batch runs alone after it, so it sees the first. Should the statement fail (a
        deadlock with a writer of another kind, say), every update runs alone, so each caller
        gets its own answer or error.
        """
        firsts: dict[int, int] = {}
        for index, update in enumerate(updates):
            firsts.setdefault(update.project_id, index)
        batch = sorted(firsts.values(), key=lambda index: updates[index].project_id)
        if len(batch) == 1:
            batch = []  # one project: the one-row statement, planned for exactly that
        done: list[Document | None] = [None] * len(updates)
        async with self._db.acquire() as connection:
            if batch:
                try:
                    rows = await connection.fetch(_UPDATE_MANY, *zip(*(updates[index] for index in batch)))
                except asyncpg.PostgresError:
                    batch = []
                else:
                    by_id = {row["id"]: Document(row["version"], row["doc"].encode()) for row in rows}
                    for index in batch:
                        done[index] = by_id.get(updates[index].project_id)
            rest = set(range(len(updates))).difference(batch)
            for index in sorted(rest):
                row = await connection.fetchrow(_UPDATE, *updates[index].single())
                done[index] = None if row is None else Document(row["version"], row["doc"].encode())
        return done

    async def delete(self, owner: str, project_id: int) -> None:
        _check_id(project_id)
        async with self._db.acquire() as connection:
            status = await connection.execute(_DELETE, project_id, owner)
        if status == "DELETE 0":
            raise NotFound(f"Project {project_id} not found")


def _check_id(project_id: int) -> None:
    if not 1 <= project_id <= MAX_ID:
        raise NotFound(f"Project {project_id} not found")

