"""Helpers of the unit tests of core/webhooks (test_store.py, test_sender.py).

A database with the migrations applied, a store over it, and a job that finishes through
the real :class:`~core.jobs.queue.JobQueue` (so the trigger under test sees exactly the
UPDATE workers make), optionally on a connection whose transaction the test controls.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from core.db.pool import DbConnection
from core.jobs.queue import Job, JobQueue
from core.webhooks.settings import WebhookSettings

PRIVATE_OK = WebhookSettings(allow_private=True)
PARAMS = {"filename": "clip.mp4", "start": 0.0, "end": 1.0, "mode": "copy"}


def on(connection: DbConnection) -> Any:
    """An ``acquire`` that always hands out ``connection`` (to run the queue inside a test's transaction)."""

    @contextlib.asynccontextmanager
    async def acquire() -> AsyncIterator[DbConnection]:
        yield connection

    return acquire


async def finish_job(queue: JobQueue, owner: str, operation_id: str, how: str = "done") -> Job:
    """Enqueue, claim and end a job the way a worker does; returns it as it ended."""
    await queue.enqueue(owner, operation_id, "trim", PARAMS)
    claimed = await queue.claim("worker-1", 30)
    assert claimed is not None and claimed.operation_id == operation_id
    if how == "done":
        assert await queue.complete(operation_id, "worker-1", {"filename": f"{operation_id}.mp4"})
    elif how == "failed":
        assert await queue.fail(operation_id, "worker-1", "ffmpeg said no")
    else:
        assert await queue.finish_cancelled(operation_id, "worker-1")
    job = await queue.get(owner, operation_id)
    assert job is not None
    return job


async def count(dsn: str, query: str, *args: object) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        value: int = await connection.fetchval(query, *args)
        return value
    finally:
        await connection.close()
