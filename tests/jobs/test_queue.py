"""JobQueue against a real PostgreSQL: the state machine, leases, idempotency, and its NOTIFYs."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from core.access.owners import LOCAL
from core.db.pool import Database
from core.jobs.queue import CANCELLED_TEXT, Job, JobEvent, JobQueue

PARAMS = {"filename": "clip.mp4", "start": 0.0, "end": 1.0, "mode": "copy"}


async def _listen(dsn: str, channel: str) -> tuple[asyncpg.Connection, list[str]]:
    heard: list[str] = []
    connection = await asyncpg.connect(dsn)
    await connection.add_listener(channel, lambda *args: heard.append(args[3]))
    return connection, heard


async def _settle(heard: list[str], count: int) -> None:
    for _ in range(200):
        if len(heard) >= count:
            return
        await asyncio.sleep(0.01)


async def test_enqueue_claim_progress_complete(queue: JobQueue, migrated_dsn: str) -> None:
    listener, heard = await _listen(migrated_dsn, "nve_job_events")
    job, created = await queue.enqueue(LOCAL, "trim-1", "trim", PARAMS)
    assert created and job.status == "queued" and job.attempts == 0 and job.params == PARAMS

    claimed = await queue.claim("w1", 30)
    assert claimed is not None and claimed.operation_id == "trim-1"
    assert claimed.status == "running" and claimed.attempts == 1 and claimed.lease_owner == "w1"
    assert await queue.claim("w2", 30) is None

    assert await queue.progress("trim-1", "w1", 40.0, "Copying")
    assert await queue.progress("trim-1", "w1", 30.0, "late")  # never lower than recorded
    assert (await queue.get(LOCAL, "trim-1")).progress == 40.0
    assert await queue.heartbeat("trim-1", "w1", 30) is False

    result = {"filename": "trim-1.mp4", "url": "/videos/trim-1.mp4", "duration": 1.0,
              "cut": {"start": 0.0, "end": 1.0}}
    assert await queue.complete("trim-1", "w1", result)
    done = await queue.get(LOCAL, "trim-1")
    assert done.status == "done" and done.progress == 100 and done.result == result
    assert done.lease_owner is None and done.finished_at is not None
    api = done.to_api()
    assert api["operationId"] == "trim-1" and api["result"] == result and "error" not in api

    await _settle(heard, 6)
    await listener.close()
    assert all(text.startswith(LOCAL + "\n") for text in heard)  # each names its owner first
    messages = [json.loads(text.partition("\n")[2]) for text in heard]
    assert [m["type"] for m in messages] == ["progress"] * 5 + ["complete"]
    assert [m["data"]["progress"] for m in messages[:-1]] == [0, 0, 40, 40, 100]
    assert [m["data"].get("message") for m in messages[:-1]] == ["Queued", "Started", "Copying", "late", "Done"]
    assert messages[-1]["data"] == {"operationId": "trim-1", "result": result}
    assert await queue.event("trim-1") == JobEvent(LOCAL, "complete", {"operationId": "trim-1", "result": result})


async def test_running_progress_stays_below_100_until_done(queue: JobQueue) -> None:
    await queue.enqueue(LOCAL, "trim-p", "trim", PARAMS)
    await queue.claim("w1", 30)
    assert await queue.progress("trim-p", "w1", 100.0, None)
    assert (await queue.get(LOCAL, "trim-p")).progress == 99.9
    assert await queue.complete("trim-p", "w1", {})
    assert (await queue.get(LOCAL, "trim-p")).progress == 100


async def test_idempotency_key_returns_the_existing_job(queue: JobQueue) -> None:
    first, created = await queue.enqueue(LOCAL, "trim-a", "trim", PARAMS, idempotency_key="k-1")
    again, created_again = await queue.enqueue(LOCAL, "trim-b", "trim", PARAMS, idempotency_key="k-1")
    assert created and not created_again
    assert again.operation_id == "trim-a"
    assert await queue.get(LOCAL, "trim-b") is None
    other, created_other = await queue.enqueue(LOCAL, "trim-c", "trim", PARAMS, idempotency_key="k-2")
    assert created_other and other.operation_id == "trim-c"


async def test_concurrent_claimers_never_take_the_same_job(migrated_dsn: str) -> None:
    db = Database(migrated_dsn, max_size=6)
    await db.open()
    try:
        queue = JobQueue(db.acquire)
        for index in range(30):
            await queue.enqueue(LOCAL, f"trim-{index}", "trim", PARAMS)

        async def claimer(name: str) -> list[str]:
            taken = []
            while (job := await queue.claim(name, 30)) is not None:
                taken.append(job.operation_id)
            return taken

        results = await asyncio.gather(*(claimer(f"w{n}") for n in range(6)))
    finally:
        await db.close()
    everything = [op for taken in results for op in taken]
    assert sorted(everything) == sorted(f"trim-{index}" for index in range(30))
    assert len(set(everything)) == 30


async def test_expired_lease_requeues_then_fails_when_attempts_are_spent(queue: JobQueue) -> None:
    cleaned: list[Job] = []
    await queue.enqueue(LOCAL, "trim-x", "trim", PARAMS)
    assert (await queue.claim("w1", 0.05)).attempts == 1
    await asyncio.sleep(0.1)
    [reaped] = await queue.reap(cleaned.append)
    assert (reaped.operation_id, reaped.attempts, reaped.status) == ("trim-x", 1, "queued")
    requeued = await queue.get(LOCAL, "trim-x")
    assert requeued.status == "queued" and requeued.lease_owner is None and requeued.error is None

    assert (await queue.claim("w2", 0.05)).attempts == 2
    assert not await queue.complete("trim-x", "w1", {})  # the first worker's lease is gone
    await asyncio.sleep(0.1)
    [reaped] = await queue.reap(cleaned.append)
    assert reaped.status == "failed"
    failed = await queue.get(LOCAL, "trim-x")
    assert failed.status == "failed" and failed.finished_at is not None
    assert "lease expired" in failed.error and "2 attempts" in failed.error
    assert await queue.event("trim-x") == JobEvent(LOCAL, "error", {"operationId": "trim-x", "error": failed.error})
    assert await queue.reap(cleaned.append) == []
    assert [(job.operation_id, job.attempts, job.status) for job in cleaned] == [("trim-x", 1, "running"),
                                                                                 ("trim-x", 2, "running")]


async def test_a_live_lease_is_not_reaped_and_heartbeats_extend_it(queue: JobQueue) -> None:
    cleaned: list[Job] = []
    await queue.enqueue(LOCAL, "trim-live", "trim", PARAMS)
    await queue.claim("w1", 0.3)
    for _ in range(4):
        await asyncio.sleep(0.1)
        assert await queue.heartbeat("trim-live", "w1", 0.3) is False
        assert await queue.reap(cleaned.append) == []
    assert await queue.heartbeat("trim-live", "w2", 0.3) is None
    assert cleaned == []


async def test_cancel_queued_running_and_finished(queue: JobQueue) -> None:
    await queue.enqueue(LOCAL, "trim-q", "trim", PARAMS)
    cancelled = await queue.cancel(LOCAL, "trim-q")
    assert cancelled.status == "cancelled" and cancelled.error == CANCELLED_TEXT
    assert await queue.claim("w1", 30) is None
    assert await queue.cancel(LOCAL, "trim-q") is None  # finished: nothing to cancel

    await queue.enqueue(LOCAL, "trim-r", "trim", PARAMS)
    await queue.claim("w1", 30)
    asked = await queue.cancel(LOCAL, "trim-r")
    assert asked.status == "running" and asked.cancel_requested
    assert await queue.heartbeat("trim-r", "w1", 30) is True
    assert not await queue.complete("trim-r", "w1", {})  # a cancel accepted beats a late success
    assert not await queue.hand_back("trim-r", "w1")
    assert await queue.finish_cancelled("trim-r", "w1")
    assert (await queue.get(LOCAL, "trim-r")).status == "cancelled"


async def test_hand_back_requeues_without_counting_the_attempt(queue: JobQueue) -> None:
    await queue.enqueue(LOCAL, "trim-h", "trim", PARAMS)
    await queue.claim("w1", 30)
    assert await queue.hand_back("trim-h", "w1")
    job = await queue.get(LOCAL, "trim-h")
    assert job.status == "queued" and job.attempts == 0 and job.lease_owner is None
    assert (await queue.claim("w2", 30)).attempts == 1


async def test_failure_is_recorded_with_its_reason(queue: JobQueue) -> None:
    await queue.enqueue(LOCAL, "trim-f", "trim", PARAMS)
    await queue.claim("w1", 30)
    assert await queue.fail("trim-f", "w1", "The source cannot be read to the end")
    job = await queue.get(LOCAL, "trim-f")
    assert job.status == "failed" and job.to_api()["error"] == "The source cannot be read to the end"
