"""One render over many workers (issue #16): a ``process`` job as the parent of chunk jobs.

First the queue's side against a real PostgreSQL (sql/006_render_chunks.sql: chunk rows are
claimable like any job, silent to clients, and end with their parent), then real worker
processes rendering real clips, compared with ffprobe against the same edits rendered in
one piece.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import subprocess
from pathlib import Path

import asyncpg
import pytest

from core.access.owners import LOCAL
from core.jobs import operations
from core.jobs.queue import CANCELLED_TEXT, Job, JobQueue
from core.media.render import render
from tests.jobs.conftest import FAST, SLOW_EDITS, SpawnWorker, media_files, wait_for_job

PARAMS = {"filename": "clip.mp4", "edits": []}
CHUNKED = dataclasses.replace(FAST, render_chunk_seconds=8.0)
"""Workers that split ``long_clip`` rendered with ``SLOW_EDITS`` (24 s, 600 frames) into 3 chunks
of 200 frames (their keyframes are 4 s apart), each rendering for about half a second."""
FRAMES = 24 * 25


async def _listen(dsn: str, *channels: str) -> tuple[asyncpg.Connection, list[tuple[str, str]]]:
    heard: list[tuple[str, str]] = []
    connection = await asyncpg.connect(dsn)
    for channel in channels:
        await connection.add_listener(channel, lambda _c, _p, name, payload: heard.append((name, payload)))
    return connection, heard


async def _parent_with_chunks(queue: JobQueue, count: int = 3, parent_id: str = "process-p") -> list[str]:
    await queue.enqueue(LOCAL, parent_id, "process", PARAMS)
    assert (await queue.claim("w1", 30)).operation_id == parent_id
    parent = await queue.get(LOCAL, parent_id)
    ids = [operations.chunk_id(parent_id, index) for index in range(count)]
    chunks = await queue.add_chunks(parent, "w1", operations.CHUNK,
                                    [(chunk, {**PARAMS, "chunk": {"index": index}, "weight": 1.0})
                                     for index, chunk in enumerate(ids)])
    assert [chunk.operation_id for chunk in chunks] == ids
    return ids


async def test_chunks_are_queued_silently_and_claimed_like_jobs(queue: JobQueue, migrated_dsn: str) -> None:
    listener, heard = await _listen(migrated_dsn, "nve_job_events", "nve_jobs_queued")
    ids = await _parent_with_chunks(queue)
    chunks = await queue.chunks("process-p")
    assert all(chunk.parent_id == "process-p" and chunk.status == "queued" and chunk.owner == LOCAL
               and chunk.operation == operations.CHUNK for chunk in chunks)
    parent = await queue.get(LOCAL, "process-p")
    assert {chunk.created_at for chunk in chunks} == {parent.created_at}  # ahead of jobs queued later

    # Any worker claims them (oldest first); the parent's worker claims only its own.
    await queue.enqueue(LOCAL, "trim-later", "trim", PARAMS)
    assert (await queue.claim("w2", 30)).operation_id == ids[0]
    assert (await queue.claim("w1", 30, "process-p")).operation_id == ids[1]
    assert await queue.claim("w1", 30, "process-other") is None
    assert await queue.progress(ids[0], "w2", 50.0, "half")
    assert await queue.complete(ids[0], "w2", {"file": "x", "frames": 1})

    # Clients see none of it: no message names a chunk, reads and cancels do not find one.
    for _ in range(100):
        if ("nve_jobs_queued", "trim-later") in heard:
            break
        await asyncio.sleep(0.01)
    await listener.close()
    events = [json.loads(payload.partition("\n")[2]) for channel, payload in heard if channel == "nve_job_events"]
    assert {event["data"]["operationId"] for event in events} == {"process-p", "trim-later"}
    assert {payload for channel, payload in heard if channel == "nve_jobs_queued"} >= set(ids)
    assert await queue.get(LOCAL, ids[2]) is None and await queue.event(ids[2]) is None
    assert await queue.cancel(LOCAL, ids[2]) is None
    assert not [event for event in await queue.events_since(parent.created_at) if "piece" in str(event.data)]


async def test_chunks_are_inserted_only_under_the_parents_lease(queue: JobQueue) -> None:
    await queue.enqueue(LOCAL, "process-q", "process", PARAMS)
    await queue.claim("w1", 30)
    parent = await queue.get(LOCAL, "process-q")
    assert await queue.add_chunks(parent, "someone-else", operations.CHUNK,
                                  [(operations.chunk_id("process-q", 0), PARAMS)]) == []
    # A second attempt's insert of the same chunks changes nothing (it reuses them).
    first = await queue.add_chunks(parent, "w1", operations.CHUNK, [(operations.chunk_id("process-q", 0), PARAMS)])
    again = await queue.add_chunks(parent, "w1", operations.CHUNK,
                                   [(operations.chunk_id("process-q", 0), {**PARAMS, "other": 1})])
    assert [chunk.params for chunk in again] == [chunk.params for chunk in first] == [PARAMS]


async def test_cancelling_the_parent_cancels_every_chunk(queue: JobQueue, migrated_dsn: str) -> None:
    ids = await _parent_with_chunks(queue)
    await queue.claim("w2", 30)  # ids[0] running
    listener, heard = await _listen(migrated_dsn, "nve_job_cancel")
    asked = await queue.cancel(LOCAL, "process-p")
    assert asked.status == "running" and asked.cancel_requested
    running, *queued = await queue.chunks("process-p")
    assert running.status == "running" and running.cancel_requested
    assert all(chunk.status == "cancelled" and chunk.error == CANCELLED_TEXT for chunk in queued)
    for _ in range(100):
        if len(heard) >= 2:
            break
        await asyncio.sleep(0.01)
    await listener.close()
    assert sorted(payload for _, payload in heard) == sorted(["process-p", ids[0]])  # both workers hear it


async def test_a_parent_that_fails_or_is_reaped_for_good_stops_its_chunks(queue: JobQueue, db) -> None:
    await _parent_with_chunks(queue)
    await queue.claim("w2", 30)
    assert await queue.fail("process-p", "w1", "boom")
    running, *queued = await queue.chunks("process-p")
    assert running.cancel_requested and {chunk.status for chunk in queued} == {"cancelled"}

    # The reaper failing a parent whose attempts are spent does the same.
    await _parent_with_chunks(queue, parent_id="process-r")
    async with db.acquire() as connection:
        await connection.execute("UPDATE jobs SET attempts = max_attempts, lease_expires_at = now() - interval '1 s'"
                                 " WHERE operation_id = 'process-r'")
    cleaned: list[str] = []
    reaped = await queue.reap(lambda job: cleaned.append(job.operation_id))
    assert [job.status for job in reaped] == ["failed"] and cleaned == ["process-r"]
    assert {chunk.status for chunk in await queue.chunks("process-r")} == {"cancelled"}


async def test_a_requeued_parent_keeps_its_chunks(queue: JobQueue, db) -> None:
    ids = await _parent_with_chunks(queue)
    assert await queue.claim("w2", 30, "process-p")
    async with db.acquire() as connection:
        await connection.execute("UPDATE jobs SET lease_expires_at = now() - interval '1 s'")
    reaped = {job.operation_id: job for job in await queue.reap(lambda job: None)}
    assert reaped["process-p"].status == "queued" and reaped[ids[0]].status == "queued"
    assert [chunk.status for chunk in await queue.chunks("process-p")] == ["queued"] * 3


async def test_chunks_emit_no_webhook(queue: JobQueue, db) -> None:
    async with db.acquire() as connection:
        await connection.execute(
            "INSERT INTO webhook_endpoints (owner, url, events, secret) VALUES ($1, 'http://127.0.0.1:9/h', "
            "ARRAY['job.completed', 'job.failed', 'job.cancelled'], 'whsec_x')", LOCAL)
    ids = await _parent_with_chunks(queue)
    await queue.claim("w2", 30)
    await queue.complete(ids[0], "w2", {"file": "x", "frames": 1})
    await queue.claim("w2", 30)
    await queue.fail(ids[1], "w2", "bad chunk")
    await queue.fail("process-p", "w1", "bad chunk")  # and ids[2], queued, is cancelled with it
    async with db.acquire() as connection:
        subjects = [row["subject"] for row in await connection.fetch("SELECT subject FROM webhook_events")]
    assert subjects == ["process-p"]


# -- real workers, real renders -------------------------------------------------------------


def _frame_times(path: Path) -> list[float]:
    """The presentation times of every decoded video frame (ffprobe, an independent decoder)."""
    result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                             "frame=best_effort_timestamp_time", "-of", "csv=p=0", str(path)],
                            capture_output=True, text=True, check=True)
    return [float(line.strip().rstrip(",")) for line in result.stdout.split()]


async def _enqueue(queue: JobQueue, media_dir: Path, source: str) -> str:
    operation_id = operations.new_operation_id("process")
    await queue.enqueue(LOCAL, operation_id, "process", operations.process_params(source, SLOW_EDITS, media_dir))
    return operation_id


async def _chunks(queue: JobQueue, operation_id: str, predicate, timeout: float = 30.0) -> list[Job]:
    """Poll the parent's chunk rows until ``predicate(chunks)`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        chunks = await queue.chunks(operation_id)
        if chunks and predicate(chunks):
            return chunks
        assert asyncio.get_running_loop().time() < deadline, f"the chunks never got there: {chunks}"
        await asyncio.sleep(0.005)


def _pid(job: Job) -> int:
    """The process id in a worker id (host:pid:random)."""
    assert job.lease_owner is not None
    return int(job.lease_owner.split(":")[1])


@pytest.fixture
async def events(migrated_dsn: str):
    """Every job message NOTIFYed while the test runs, decoded."""
    heard: list[dict] = []
    connection = await asyncpg.connect(migrated_dsn)
    await connection.add_listener("nve_job_events",
                                  lambda *args: heard.append(json.loads(args[3].partition("\n")[2])))
    yield heard
    await connection.close()


async def test_two_workers_render_the_chunks_once_and_the_output_equals_one_piece(
        queue: JobQueue, media_dir: Path, long_clip: str, spawn_worker: SpawnWorker, events: list[dict]) -> None:
    operation_id = await _enqueue(queue, media_dir, long_clip)
    await spawn_worker(CHUNKED)
    await spawn_worker(CHUNKED)
    reference = media_dir.parent / "reference.mp4"
    await asyncio.to_thread(render, media_dir / long_clip, reference, SLOW_EDITS)

    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    assert job.status == "done", job.error
    chunks = await queue.chunks(operation_id)
    assert len(chunks) == 3 and all(chunk.status == "done" and chunk.attempts == 1 for chunk in chunks)
    output = media_dir / job.result["filename"]
    times = _frame_times(output)
    assert times == pytest.approx(_frame_times(reference), abs=1e-3)
    assert job.result["render"] == {"path": "chunked", "chunks": len(chunks), "reencodedFrames": len(times),
                                    "copiedFrames": 0, "reason": "A speed change retimes every frame."}
    assert job.result["duration"] == pytest.approx(times[-1] + times[1] - times[0], abs=0.05)
    assert media_files(media_dir) == {long_clip, output.name}  # every piece removed

    await asyncio.sleep(0.1)  # the last NOTIFYs
    assert {event["data"]["operationId"] for event in events} == {operation_id}
    progress = [event["data"]["progress"] for event in events if event["type"] == "progress"]
    assert progress == sorted(progress) and progress.count(100) == 1 and progress[-1] == 100
    assert len(set(progress)) > 4  # it moved along the chunks, not in one jump
    assert [event["type"] for event in events].count("complete") == 1


async def _kill_mid_chunk(queue: JobQueue, operation_id: str, workers: list) -> Job:
    """SIGKILL the worker rendering a chunk (not the parent's worker) once that chunk is under way."""
    parent = await wait_for_job(queue, operation_id, lambda job: job.status == "running")

    def mid_chunk(chunk: Job) -> bool:
        return chunk.status == "running" and 0 < chunk.progress < 50 and chunk.lease_owner != parent.lease_owner

    chunks = await _chunks(queue, operation_id, lambda chunks: any(map(mid_chunk, chunks)))
    victim = next(filter(mid_chunk, chunks))
    [process] = [worker for worker in workers if worker.pid == _pid(victim)]
    process.send_signal(signal.SIGKILL)
    await process.wait()
    return victim


async def test_a_worker_killed_mid_chunk_loses_only_that_chunk(
        queue: JobQueue, media_dir: Path, long_clip: str, spawn_worker: SpawnWorker) -> None:
    operation_id = await _enqueue(queue, media_dir, long_clip)
    workers = [await spawn_worker(CHUNKED), await spawn_worker(CHUNKED)]
    victim = await _kill_mid_chunk(queue, operation_id, workers)

    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    assert job.status == "done" and job.attempts == 1, job.error
    attempts = {chunk.operation_id: chunk.attempts for chunk in await queue.chunks(operation_id)}
    assert attempts.pop(victim.operation_id) == 2 and set(attempts.values()) == {1}
    assert len(_frame_times(media_dir / job.result["filename"])) == job.result["render"]["reencodedFrames"]
    assert media_files(media_dir) == {long_clip, job.result["filename"]}  # the killed attempt's file too


async def test_a_chunk_whose_attempts_are_spent_fails_the_job_with_its_error(
        queue: JobQueue, media_dir: Path, long_clip: str, spawn_worker: SpawnWorker) -> None:
    operation_id = await _enqueue(queue, media_dir, long_clip)
    once = dataclasses.replace(CHUNKED, max_attempts=1)  # the chunks' attempts come from their workers
    workers = [await spawn_worker(once), await spawn_worker(once)]
    victim = await _kill_mid_chunk(queue, operation_id, workers)

    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    chunk = next(chunk for chunk in await queue.chunks(operation_id) if chunk.operation_id == victim.operation_id)
    assert chunk.status == "failed" and "stopped responding" in chunk.error
    assert job.status == "failed" and job.error == chunk.error
    assert {chunk.status for chunk in await queue.chunks(operation_id)} <= {"done", "failed", "cancelled"}
    assert media_files(media_dir) == {long_clip}


async def test_a_chunk_that_fails_fails_the_job_with_its_error(
        queue: JobQueue, media_dir: Path, long_clip: str, spawn_worker: SpawnWorker) -> None:
    operation_id = await _enqueue(queue, media_dir, long_clip)
    await spawn_worker(CHUNKED)  # alone: it renders the chunks one after another
    await _chunks(queue, operation_id, lambda chunks: chunks[0].status == "done")
    source = media_dir / long_clip
    with source.open("r+b") as file:  # the source is damaged after the job was planned
        file.truncate(source.stat().st_size // 3)

    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    chunks = await queue.chunks(operation_id)
    failed = [chunk for chunk in chunks if chunk.status == "failed"]
    assert job.status == "failed" and len(failed) == 1 and job.error == failed[0].error
    assert "Internal error" not in job.error
    assert {chunk.status for chunk in chunks} <= {"done", "failed", "cancelled"}
    assert media_files(media_dir) == {long_clip}


async def test_cancel_mid_render_cancels_every_chunk_and_leaves_no_piece(
        queue: JobQueue, media_dir: Path, long_clip: str, spawn_worker: SpawnWorker, events: list[dict]) -> None:
    operation_id = await _enqueue(queue, media_dir, long_clip)
    await spawn_worker(CHUNKED)
    await spawn_worker(CHUNKED)
    await _chunks(queue, operation_id, lambda chunks: any(chunk.status == "running" and chunk.progress > 0
                                                          for chunk in chunks))
    assert (await queue.cancel(LOCAL, operation_id)).status == "running"

    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    assert job.status == "cancelled" and job.error == CANCELLED_TEXT
    chunks = await queue.chunks(operation_id)
    assert {chunk.status for chunk in chunks} <= {"done", "cancelled"} and "cancelled" in {c.status for c in chunks}
    assert media_files(media_dir) == {long_clip}
    await asyncio.sleep(0.1)
    assert [event["type"] for event in events][-1] == "error"
    assert {event["data"]["operationId"] for event in events} == {operation_id}


async def test_the_parents_worker_killed_the_next_attempt_reuses_the_done_chunks(
        queue: JobQueue, media_dir: Path, long_clip: str, spawn_worker: SpawnWorker) -> None:
    operation_id = await _enqueue(queue, media_dir, long_clip)
    first = await spawn_worker(CHUNKED)
    before = await _chunks(queue, operation_id, lambda chunks: sum(chunk.status == "done" for chunk in chunks) >= 2)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    done = {chunk.operation_id: chunk.result for chunk in before if chunk.status == "done"}
    assert len(done) < len(before)

    await spawn_worker(CHUNKED)  # one worker alone finishes a chunked job
    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    assert job.status == "done" and job.attempts == 2, job.error
    after = {chunk.operation_id: chunk for chunk in await queue.chunks(operation_id)}
    assert all(after[chunk_id].attempts == 1 and after[chunk_id].result == result for chunk_id, result in done.items())
    assert all(chunk.status == "done" for chunk in after.values())
    output = media_dir / job.result["filename"]
    assert job.result["filename"] == f"{operation_id}.r2.mp4"
    assert len(_frame_times(output)) == job.result["render"]["reencodedFrames"] == FRAMES
    assert media_files(media_dir) == {long_clip, output.name}


async def test_sigterm_hands_back_the_parent_and_the_chunk_its_worker_renders(
        queue: JobQueue, media_dir: Path, long_clip: str, spawn_worker: SpawnWorker) -> None:
    operation_id = await _enqueue(queue, media_dir, long_clip)
    first = await spawn_worker(CHUNKED)
    await _chunks(queue, operation_id, lambda chunks: any(chunk.status == "running" and 0 < chunk.progress < 50
                                                          for chunk in chunks))
    first.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(first.wait(), 10) == 0
    parent = await queue.get(LOCAL, operation_id)
    assert parent.status == "queued" and parent.attempts == 0
    chunks = await queue.chunks(operation_id)
    assert all(chunk.status == "done" and chunk.attempts == 1 or chunk.status == "queued" and chunk.attempts == 0
               for chunk in chunks), chunks  # neither attempt counts

    await spawn_worker(CHUNKED)
    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    assert job.status == "done" and job.attempts == 1 and job.result["filename"] == f"{operation_id}.mp4"
    assert {chunk.attempts for chunk in await queue.chunks(operation_id)} == {1}
    assert media_files(media_dir) == {long_clip, job.result["filename"]}


async def test_the_chunk_rows_of_a_parent_long_ended_are_swept_with_its_pieces(
        queue: JobQueue, db, media_dir: Path) -> None:
    # A parent cancelled while queued between two attempts: no worker concludes it.
    ids = await _parent_with_chunks(queue)
    await queue.claim("w2", 30)
    await queue.complete(ids[0], "w2", {"file": f".{ids[0]}.mp4", "frames": 1})
    (media_dir / f".{ids[0]}.mp4").write_bytes(b"a chunk")
    (media_dir / operations.audio_name("process-p")).write_bytes(b"its audio")
    assert await queue.hand_back("process-p", "w1")
    assert (await queue.cancel(LOCAL, "process-p")).status == "cancelled"
    assert {chunk.status for chunk in await queue.chunks("process-p")} == {"done", "cancelled"}

    def sweep(parent_id: str) -> None:
        operations.remove_pieces(media_dir, parent_id)

    assert await queue.sweep_chunks(60, sweep) == []  # kept a while, to look into
    async with db.acquire() as connection:
        await connection.execute("UPDATE jobs SET finished_at = now() - interval '61 s' WHERE parent_id IS NULL")
    assert await queue.sweep_chunks(60, sweep) == ["process-p"]
    assert await queue.chunks("process-p") == [] and media_files(media_dir) == set()
    assert (await queue.get(LOCAL, "process-p")).status == "cancelled"
