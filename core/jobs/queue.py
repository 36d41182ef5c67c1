"""JobQueue: the jobs table as a durable queue with leases (sql/003_jobs.sql).

Life of a job::

    enqueue -> queued -> claim -> running --complete--> done
                  ^                 |  \\--fail-------> failed
                  |                 |   \\--cancelled-> cancelled
                  +--hand_back------+
                  +--reap (lease expired, attempts left; else failed with the reason)

- enqueue is one INSERT (the trigger NOTIFYs); an idempotency key already used returns
  the job it created instead of a new one.
- claim takes the oldest queued job with ``SELECT ... FOR UPDATE SKIP LOCKED``, so two
  workers never take the same job and never wait on each other, and counts the attempt.
- A claim is a lease: the worker renews it with :meth:`heartbeat`; every write of a worker
  names its ``lease_owner`` and changes nothing once the lease was lost (reaped), so a
  worker that was presumed dead cannot overwrite the job's new life.
- :meth:`reap` returns expired leases to the queue, or fails the job once its attempts
  are spent (a worker killed with SIGKILL never says goodbye).
- Cancel: a queued job is cancelled at once; a running one gets ``cancel_requested`` and
  its worker stops cooperatively and records the cancellation.
- Chunks (sql/006_render_chunks.sql): a job may have sub-jobs, rows with a ``parent_id``,
  queued by its worker in one transaction (:meth:`add_chunks`) and claimed like any job (or
  by the parent's worker, :meth:`claim` with ``parent_id``). Clients never see them: the
  reads, the cancel and the NOTIFYed messages are the parent's; a parent that is cancelled
  or ends without its result cancels its unfinished chunks (a trigger).

The queue borrows connections through ``acquire`` (``Database.acquire`` on the server, a
pool's ``acquire`` in a worker) and holds none between calls.

A job's WebSocket message (core/jobs/messages.py) is made in two places: the table's trigger
NOTIFYs it as the row changes (``nve_job_event()``, SQL), and :meth:`Job.to_message` makes it from
a row read later (:meth:`JobQueue.event`, :meth:`JobQueue.events_since`: the latest-state
fallback). tests/jobs/test_job_messages.py holds the two equal for every transition below.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from core.db.pool import DbConnection
from core.jobs import messages

Acquire = Callable[[], AbstractAsyncContextManager[DbConnection]]

FINISHED = frozenset({"done", "failed", "cancelled"})
CANCELLED_TEXT = "The operation was cancelled"


@dataclass(frozen=True, slots=True)
class Job:
    operation_id: str
    owner: str
    """Who the job belongs to (core/access/owners.py); ``lease_owner`` is the worker running it."""
    operation: str
    params: dict[str, Any]
    status: str
    progress: float
    message: str | None
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    lease_owner: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    parent_id: str | None = None
    """The job this one is a chunk of (operation ``render-chunk``); None for the jobs clients see."""

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Job:
        return cls(row["operation_id"], row["owner"], row["operation"], json.loads(row["params"]), row["status"],
                   row["progress"], row["message"],
                   json.loads(row["result"]) if row["result"] is not None else None, row["error"],
                   row["attempts"], row["max_attempts"], row["lease_owner"], row["cancel_requested"],
                   row["created_at"], row["updated_at"], row["started_at"], row["finished_at"],
                   row["parent_id"])

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_api(self) -> dict[str, Any]:
        """The shape of ``GET /api/jobs/:operationId``."""
        body: dict[str, Any] = {
            "operationId": self.operation_id, "operation": self.operation, "status": self.status,
            "progress": self.progress, "message": self.message,
            "attempts": self.attempts, "maxAttempts": self.max_attempts,
            "cancelRequested": self.cancel_requested,
            "createdAt": _iso(self.created_at), "updatedAt": _iso(self.updated_at),
            "startedAt": _iso(self.started_at), "finishedAt": _iso(self.finished_at),
        }
        if self.status == "done":
            body["result"] = self.result
        elif self.error is not None:
            body["error"] = self.error
        return body

    def to_message(self) -> messages.JobMessage:
        """The WebSocket message the job's current state means, as ``nve_job_event()`` makes it.

        Progress while queued or running, complete when done, error when failed or cancelled.
        """
        if self.status == "done":
            assert self.result is not None, "complete() always stores a result"
            return messages.CompleteMessage(messages.Complete(operation_id=self.operation_id, result=self.result))
        if self.status in FINISHED:
            assert self.error is not None, "every way to fail or cancel a job stores its error"
            return messages.ErrorMessage(messages.Failure(operation_id=self.operation_id, error=self.error))
        return messages.ProgressMessage(messages.Progress(
            operation_id=self.operation_id, operation=self.operation, progress=self.progress,
            message=self.message if self.message is not None else msgspec.UNSET))


@dataclass(frozen=True, slots=True)
class JobEvent:
    """A job's current WebSocket message (``type``, ``data``) and the owner it is for."""

    owner: str
    type: str
    data: dict[str, Any]

    @classmethod
    def of(cls, job: Job) -> JobEvent:
        message = job.to_message()
        return cls(job.owner, message.kind, messages.to_data(message))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


_FIELDS = ("operation_id", "owner", "operation", "params::text AS params", "status", "progress", "message",
           "result::text AS result", "error", "attempts", "max_attempts", "lease_owner", "cancel_requested",
           "created_at", "updated_at", "started_at", "finished_at", "parent_id")


def _columns(prefix: str = "") -> str:
    return ", ".join(prefix + field for field in _FIELDS)


_COLUMNS = _columns()

_INSERT = f"""
INSERT INTO jobs (operation_id, operation, params, max_attempts, idempotency_key, message, owner)
VALUES ($1, $2, $3::jsonb, $4, $5, 'Queued', $6)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING {_COLUMNS}"""

_BY_KEY = f"SELECT {_COLUMNS} FROM jobs WHERE idempotency_key = $1"
# Clients see jobs without a parent only: a chunk is its parent's business (sql/006_render_chunks.sql).
_BY_ID = f"SELECT {_COLUMNS} FROM jobs WHERE operation_id = $1 AND owner = $2 AND parent_id IS NULL"
_ANY_OWNERS = f"SELECT {_COLUMNS} FROM jobs WHERE operation_id = $1 AND parent_id IS NULL"
_CHANGED_SINCE = f"SELECT {_COLUMNS} FROM jobs WHERE updated_at >= $1 AND parent_id IS NULL ORDER BY updated_at"

_CLAIM_TEMPLATE = """
WITH next AS (
  SELECT operation_id FROM jobs WHERE status = 'queued'{only}
  ORDER BY created_at, operation_id LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, lease_owner = $1,
  lease_expires_at = now() + make_interval(secs => $2), started_at = coalesce(j.started_at, now()),
  message = 'Started', updated_at = now()
FROM next WHERE j.operation_id = next.operation_id
RETURNING {columns}"""
_CLAIM = _CLAIM_TEMPLATE.format(only="", columns=_columns("j."))
# A parent's worker claims its own job's chunks while it waits for them (any worker may too).
_CLAIM_CHUNK = _CLAIM_TEMPLATE.format(only=" AND parent_id = $3", columns=_columns("j."))

# Chunks are inserted by the parent's worker while it holds the parent's lease, all in one
# statement; a later attempt of the parent finds them (ON CONFLICT: the ids are the parent's
# and the chunk's index) and reuses those done. They take the parent's created_at, so workers
# finish a render already under way before they start a job queued after it.
_ADD_CHUNKS = """
INSERT INTO jobs (operation_id, operation, params, max_attempts, message, owner, parent_id, created_at, updated_at)
SELECT chunk.id, $3, chunk.params::jsonb, $4, 'Queued', p.owner, p.operation_id, p.created_at, now()
FROM unnest($5::text[], $6::text[]) AS chunk(id, params), jobs p
WHERE p.operation_id = $1 AND p.lease_owner = $2 AND p.status = 'running'
ON CONFLICT (operation_id) DO NOTHING"""
_CHUNKS = f"SELECT {_COLUMNS} FROM jobs WHERE parent_id = $1 ORDER BY operation_id"
_STOP_CHUNKS = "SELECT nve_cancel_chunks($1)"
# The chunk rows of parents that ended long ago (a parent's end is final, so nothing reads them
# again but a person looking into what happened).
_SWEEP_CHUNKS = """
DELETE FROM jobs c USING jobs p
WHERE c.parent_id = p.operation_id AND p.status IN ('done', 'failed', 'cancelled')
  AND p.finished_at < now() - make_interval(secs => $1) AND c.status IN ('done', 'failed', 'cancelled')
RETURNING c.parent_id"""

_HEARTBEAT = """
UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3)
WHERE operation_id = $1 AND lease_owner = $2 AND status = 'running'
RETURNING cancel_requested"""

# 100 belongs to the moment the job is done (see the trigger in sql/003_jobs.sql).
RUNNING_MAX_PROGRESS = 99.9

_PROGRESS = f"""
UPDATE jobs SET progress = least(greatest(progress, $3), {RUNNING_MAX_PROGRESS}), message = coalesce($4, message),
  updated_at = now()
WHERE operation_id = $1 AND lease_owner = $2 AND status = 'running'"""

# The worker's final word; a lost lease or a cancel that came first makes it a no-op. The
# message says how it ended (it said 'Started' or the last progress note before).
_FINISH = """
UPDATE jobs SET status = $3, result = $4::jsonb, error = $5,
  message = CASE $3 WHEN 'done' THEN 'Done' WHEN 'cancelled' THEN 'Cancelled' ELSE 'Failed' END,
  progress = CASE WHEN $3 = 'done' THEN 100 ELSE progress END,
  lease_owner = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now()
WHERE operation_id = $1 AND lease_owner = $2 AND status = 'running'
  AND ($3 = 'cancelled' OR NOT cancel_requested)"""

_RECORD_OUTPUTS = """
INSERT INTO media_files (filename, owner) SELECT unnest($1::text[]), $2 ON CONFLICT (filename) DO NOTHING"""

_HAND_BACK = """
UPDATE jobs SET status = 'queued', attempts = greatest(attempts - 1, 0), lease_owner = NULL,
  lease_expires_at = NULL, message = 'Requeued (worker stopped)', updated_at = now()
WHERE operation_id = $1 AND lease_owner = $2 AND status = 'running' AND NOT cancel_requested"""

_CANCEL = f"""
UPDATE jobs SET cancel_requested = true,
  status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
  error = CASE WHEN status = 'queued' THEN '{CANCELLED_TEXT}' ELSE error END,
  finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
  updated_at = now()
WHERE operation_id = $1 AND owner = $2 AND status IN ('queued', 'running') AND parent_id IS NULL
RETURNING {_COLUMNS}"""

_EXPIRED = f"""
SELECT {_COLUMNS} FROM jobs WHERE status = 'running' AND lease_expires_at < now()
FOR UPDATE SKIP LOCKED"""

_REAP = f"""
UPDATE jobs j SET
  status = CASE WHEN j.cancel_requested THEN 'cancelled'
                WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END,
  error = CASE WHEN j.cancel_requested THEN '{CANCELLED_TEXT}'
               WHEN j.attempts >= j.max_attempts THEN format(
                 'The worker running this job stopped responding (lease expired) on each of %s attempts',
                 j.attempts)
               ELSE j.error END,
  message = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts THEN j.message
                 ELSE 'Requeued (worker lost)' END,
  finished_at = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts THEN now() END,
  lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE j.operation_id = any($1::text[])
RETURNING {_columns("j.")}"""


class JobQueue:
    def __init__(self, acquire: Acquire, max_attempts: int = 3) -> None:
        self._acquire = acquire
        self.max_attempts = max_attempts

    async def enqueue(self, owner: str, operation_id: str, operation: str, params: dict[str, Any],
                      idempotency_key: str | None = None) -> tuple[Job, bool]:
        """Insert a queued job; returns it and True, or the key's existing job and False.

        Idempotency keys are the owner's own: two owners choosing the same key get a job each.
        """
        async with self._acquire() as connection:
            return await self.enqueue_on(connection, owner, operation_id, operation, params, idempotency_key)

    async def enqueue_on(self, connection: DbConnection, owner: str, operation_id: str, operation: str,
                         params: dict[str, Any], idempotency_key: str | None = None) -> tuple[Job, bool]:
        """:meth:`enqueue` on ``connection``: in the caller's transaction, the job exists (and
        workers hear of it) only if that transaction commits."""
        scoped_key = None if idempotency_key is None else f"{owner}\n{idempotency_key}"
        row = await connection.fetchrow(_INSERT, operation_id, operation, json.dumps(params),
                                        self.max_attempts, scoped_key, owner)
        if row is not None:
            return Job.from_row(row), True
        row = await connection.fetchrow(_BY_KEY, scoped_key)
        assert row is not None, "the insert conflicted on this key, so a job holds it"
        return Job.from_row(row), False

    async def get(self, owner: str, operation_id: str) -> Job | None:
        """The job, if it exists and belongs to ``owner``."""
        async with self._acquire() as connection:
            row = await connection.fetchrow(_BY_ID, operation_id, owner)
        return Job.from_row(row) if row is not None else None

    async def event(self, operation_id: str) -> JobEvent | None:
        """The WebSocket message for the job's current state, or None if unknown."""
        async with self._acquire() as connection:
            row = await connection.fetchrow(_ANY_OWNERS, operation_id)
        return JobEvent.of(Job.from_row(row)) if row is not None else None

    async def events_since(self, since: datetime) -> list[JobEvent]:
        """The current message of every job changed since ``since`` (catch-up after a lost LISTEN)."""
        async with self._acquire() as connection:
            rows = await connection.fetch(_CHANGED_SINCE, since)
        return [JobEvent.of(Job.from_row(row)) for row in rows]

    async def cancel(self, owner: str, operation_id: str) -> Job | None:
        """Cancel ``owner``'s queued job now, or ask a running one's worker to stop; None if neither applies."""
        async with self._acquire() as connection:
            row = await connection.fetchrow(_CANCEL, operation_id, owner)
        return Job.from_row(row) if row is not None else None

    # -- the worker's side ------------------------------------------------------------------

    async def claim(self, worker_id: str, lease_seconds: float, parent_id: str | None = None) -> Job | None:
        """Take the oldest queued job (of ``parent_id``'s chunks only, if given), counting the attempt."""
        async with self._acquire() as connection:
            if parent_id is None:
                row = await connection.fetchrow(_CLAIM, worker_id, lease_seconds)
            else:
                row = await connection.fetchrow(_CLAIM_CHUNK, worker_id, lease_seconds, parent_id)
        return Job.from_row(row) if row is not None else None

    async def add_chunks(self, parent: Job, worker_id: str, operation: str,
                         chunks: list[tuple[str, dict[str, Any]]]) -> list[Job]:
        """Queue ``chunks`` (operation ids and params) of ``parent``, a job this worker runs,
        in one transaction; returns every chunk of the parent (empty if the lease was lost)."""
        ids = [operation_id for operation_id, _ in chunks]
        params = [json.dumps(chunk_params) for _, chunk_params in chunks]
        async with self._acquire() as connection, connection.transaction():
            await connection.execute(_ADD_CHUNKS, parent.operation_id, worker_id, operation, self.max_attempts,
                                     ids, params)
            rows = await connection.fetch(_CHUNKS, parent.operation_id)
        return [Job.from_row(row) for row in rows]

    async def chunks(self, parent_id: str) -> list[Job]:
        """The chunks of ``parent_id``, in order."""
        async with self._acquire() as connection:
            rows = await connection.fetch(_CHUNKS, parent_id)
        return [Job.from_row(row) for row in rows]

    async def stop_chunks(self, parent_id: str) -> int:
        """Cancel the queued chunks of ``parent_id`` and ask the running ones to stop; how many."""
        async with self._acquire() as connection:
            touched: int = await connection.fetchval(_STOP_CHUNKS, parent_id)
        return touched

    async def heartbeat(self, operation_id: str, worker_id: str, lease_seconds: float) -> bool | None:
        """Renew the lease; returns whether a cancel was requested, or None if the lease is lost."""
        async with self._acquire() as connection:
            cancel_requested: bool | None = await connection.fetchval(_HEARTBEAT, operation_id, worker_id,
                                                                       lease_seconds)
        return cancel_requested

    async def progress(self, operation_id: str, worker_id: str, percent: float, message: str | None) -> bool:
        """Record progress (never lower than recorded, below 100 until done); False if the lease is lost."""
        async with self._acquire() as connection:
            status = await connection.execute(_PROGRESS, operation_id, worker_id, percent, message)
        return status == "UPDATE 1"

    async def complete(self, operation_id: str, worker_id: str, result: dict[str, Any]) -> bool:
        """Mark done with ``result``; False if the lease was lost or a cancel came first."""
        return await self._finish(operation_id, worker_id, "done", json.dumps(result), None)

    async def fail(self, operation_id: str, worker_id: str, error: str) -> bool:
        return await self._finish(operation_id, worker_id, "failed", None, error)

    async def finish_cancelled(self, operation_id: str, worker_id: str) -> bool:
        return await self._finish(operation_id, worker_id, "cancelled", None, CANCELLED_TEXT)

    async def record_outputs(self, owner: str, filenames: list[str]) -> None:
        """Make the files an attempt is about to write ``owner``'s (core/access/media.py)."""
        async with self._acquire() as connection:
            await connection.execute(_RECORD_OUTPUTS, filenames, owner)

    async def hand_back(self, operation_id: str, worker_id: str) -> bool:
        """Requeue a job this worker stops running (shutdown); the attempt does not count."""
        async with self._acquire() as connection:
            status = await connection.execute(_HAND_BACK, operation_id, worker_id)
        return status == "UPDATE 1"

    async def sweep_chunks(self, older_than: float, clean_up: Callable[[str], None]) -> list[str]:
        """Delete the chunk rows of parents that ended more than ``older_than`` s ago.

        ``clean_up(parent_id)`` removes what the parent left (its pieces) before the rows go,
        in their transaction: pieces a parent's worker could not remove (a parent cancelled
        while queued between two attempts has none to do it) are found this way. Returns
        the parents swept.
        """
        async with self._acquire() as connection, connection.transaction():
            parents = sorted({row["parent_id"] for row in await connection.fetch(_SWEEP_CHUNKS, older_than)})
            for parent_id in parents:
                clean_up(parent_id)
        return parents

    async def reap(self, clean_up: Callable[[Job], None]) -> list[Job]:
        """Requeue (or fail, attempts spent; or cancel, if asked) every job whose lease expired.

        ``clean_up(job)`` removes what the lost attempt left (``attempts`` is its number)
        while the row is still locked, so nobody sees the job failed with a partial file
        beside it. Returns the jobs as they are now.
        """
        async with self._acquire() as connection, connection.transaction():
            expired = [Job.from_row(row) for row in await connection.fetch(_EXPIRED)]
            if not expired:
                return []
            for job in expired:
                clean_up(job)
            rows = await connection.fetch(_REAP, [job.operation_id for job in expired])
        return [Job.from_row(row) for row in rows]

    async def _finish(self, operation_id: str, worker_id: str, status: str, result: str | None,
                      error: str | None) -> bool:
        async with self._acquire() as connection:
            outcome = await connection.execute(_FINISH, operation_id, worker_id, status, result, error)
        return outcome == "UPDATE 1"
