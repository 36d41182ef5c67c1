"""Real worker processes on a real queue: running, crashing, cancelling, handing back."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from pathlib import Path

from core.access.owners import LOCAL
from core.db.pool import Database
from core.jobs import operations
from core.jobs.queue import JobQueue
from core.media.probe import media_duration
from tests.jobs.conftest import FAST, SLOW_EDITS, SpawnWorker, media_files, wait_for_job


async def _enqueue_trim(queue: JobQueue, media_dir: Path, clip: str, **body: object) -> str:
    params = operations.trim_params({"filename": clip, "startTime": 0.5, "endTime": 1.5, **body}, media_dir)
    operation_id = operations.new_operation_id("trim")
    await queue.enqueue(LOCAL, operation_id, "trim", params)
    return operation_id


async def _enqueue_slow(queue: JobQueue, media_dir: Path, slow_clip: str) -> str:
    operation_id = operations.new_operation_id("process")
    await queue.enqueue(LOCAL, operation_id, "process", operations.process_params(slow_clip, SLOW_EDITS, media_dir))
    return operation_id


def _mid_job(job) -> bool:
    return job.status == "running" and job.progress > 0


async def test_worker_runs_trim_split_and_process(queue: JobQueue, media_dir: Path, clip: str,
                                                  spawn_worker: SpawnWorker) -> None:
    trim_id = await _enqueue_trim(queue, media_dir, clip)
    split_id = operations.new_operation_id("split")
    await queue.enqueue(LOCAL, split_id, "split", operations.split_params({"filename": clip, "splitTime": 1.0}, media_dir))
    process_id = operations.new_operation_id("process")
    await queue.enqueue(LOCAL, process_id, "process", operations.process_params(
        clip, [{"type": "trim", "start": 0, "end": 1}, {"type": "volume", "gain": 0.5}], media_dir))
    await spawn_worker()

    trimmed = await wait_for_job(queue, trim_id, lambda job: job.finished)
    assert trimmed.status == "done", trimmed.error
    result = trimmed.result
    assert result["filename"] == f"{trim_id}.mp4" and result["url"] == f"/videos/{trim_id}.mp4"
    assert result["cut"]["start"] <= 0.5 and result["cut"]["end"] >= 1.5
    assert abs(media_duration(media_dir / result["filename"]) - result["duration"]) < 0.01

    split = await wait_for_job(queue, split_id, lambda job: job.finished)
    assert split.status == "done", split.error
    one, two = split.result["parts"]
    assert one["filename"] == split.result["filename"] == f"{split_id}-part1.mp4"
    assert two["filename"] == f"{split_id}-part2.mp4" and two["url"] == f"/videos/{split_id}-part2.mp4"
    assert split.result["duration"] == one["duration"]
    assert abs(one["duration"] + two["duration"] - 2.0) < 0.1

    processed = await wait_for_job(queue, process_id, lambda job: job.finished)
    assert processed.status == "done", processed.error
    assert abs(processed.result["duration"] - 1.0) < 0.1
    assert not [name for name in media_files(media_dir) if name.startswith(".")]


async def test_two_workers_run_every_job_exactly_once(queue: JobQueue, media_dir: Path, clip: str,
                                                      spawn_worker: SpawnWorker) -> None:
    ids = [await _enqueue_trim(queue, media_dir, clip) for _ in range(8)]
    await spawn_worker()
    await spawn_worker()
    for operation_id in ids:
        job = await wait_for_job(queue, operation_id, lambda job: job.finished)
        assert job.status == "done" and job.attempts == 1


async def test_sigkill_mid_job_is_requeued_and_completed_by_another_worker(
        queue: JobQueue, media_dir: Path, slow_clip: str, spawn_worker: SpawnWorker) -> None:
    operation_id = await _enqueue_slow(queue, media_dir, slow_clip)
    first = await spawn_worker()
    await wait_for_job(queue, operation_id, _mid_job)
    await spawn_worker()  # idle until the lease of the killed worker expires
    first.send_signal(signal.SIGKILL)
    await first.wait()

    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    assert job.status == "done", job.error
    assert job.attempts == 2 and job.result["filename"] == f"{operation_id}.r2.mp4"
    # The killed attempt's unfinished output was removed when its lease was reaped.
    assert media_files(media_dir) == {slow_clip, job.result["filename"]}


async def test_attempts_are_bounded_then_the_job_fails_with_the_reason(
        queue: JobQueue, db: Database, media_dir: Path, slow_clip: str, spawn_worker: SpawnWorker) -> None:
    operation_id = operations.new_operation_id("process")
    await JobQueue(db.acquire, max_attempts=1).enqueue(LOCAL, operation_id, "process", operations.process_params(slow_clip, SLOW_EDITS, media_dir))
    first = await spawn_worker()
    await wait_for_job(queue, operation_id, _mid_job)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    await spawn_worker()

    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    assert job.status == "failed" and job.attempts == 1
    assert "stopped responding (lease expired)" in job.error
    assert media_files(media_dir) == {slow_clip}


async def test_cancel_a_running_job_leaves_no_output_and_the_worker_goes_on(
        queue: JobQueue, media_dir: Path, clip: str, slow_clip: str, spawn_worker: SpawnWorker) -> None:
    operation_id = await _enqueue_slow(queue, media_dir, slow_clip)
    await spawn_worker()
    await wait_for_job(queue, operation_id, _mid_job)
    asked = await queue.cancel(LOCAL, operation_id)
    assert asked.status == "running" and asked.cancel_requested

    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    assert job.status == "cancelled" and job.error == "The operation was cancelled"
    assert media_files(media_dir) == {clip, slow_clip}

    after = await _enqueue_trim(queue, media_dir, clip)
    assert (await wait_for_job(queue, after, lambda job: job.finished)).status == "done"


async def test_cancel_a_queued_job(queue: JobQueue, media_dir: Path, clip: str,
                                   spawn_worker: SpawnWorker) -> None:
    operation_id = await _enqueue_trim(queue, media_dir, clip)
    assert (await queue.cancel(LOCAL, operation_id)).status == "cancelled"
    await spawn_worker()
    later = await _enqueue_trim(queue, media_dir, clip)
    assert (await wait_for_job(queue, later, lambda job: job.finished)).status == "done"
    assert (await queue.get(LOCAL, operation_id)).status == "cancelled"
    assert f"{operation_id}.mp4" not in media_files(media_dir)


async def test_sigterm_hands_the_running_job_back(queue: JobQueue, media_dir: Path, slow_clip: str,
                                                  spawn_worker: SpawnWorker) -> None:
    operation_id = await _enqueue_slow(queue, media_dir, slow_clip)
    first = await spawn_worker()
    await wait_for_job(queue, operation_id, _mid_job)
    first.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(first.wait(), 10) == 0
    handed_back = await queue.get(LOCAL, operation_id)
    assert handed_back.status == "queued" and handed_back.attempts == 0
    assert media_files(media_dir) == {slow_clip}

    await spawn_worker()
    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    assert job.status == "done" and job.attempts == 1


async def test_bad_media_fails_the_job_with_a_clear_error(queue: JobQueue, media_dir: Path,
                                                          spawn_worker: SpawnWorker) -> None:
    (media_dir / "noise.mp4").write_bytes(b"\x00not a video" * 1000)
    operation_id = await _enqueue_trim(queue, media_dir, "noise.mp4")
    await spawn_worker()
    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    assert job.status == "failed" and job.attempts == 1 and job.error
    assert "Internal error" not in job.error
    assert media_files(media_dir) == {"noise.mp4"}


async def test_a_trim_past_the_end_fails_naming_the_field(queue: JobQueue, media_dir: Path, clip: str,
                                                          spawn_worker: SpawnWorker) -> None:
    operation_id = await _enqueue_trim(queue, media_dir, clip, startTime=5.0, endTime=6.0)
    await spawn_worker()
    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    assert job.status == "failed" and "startTime" in job.error


async def test_a_job_past_its_time_limit_fails(queue: JobQueue, media_dir: Path, slow_clip: str,
                                               spawn_worker: SpawnWorker) -> None:
    operation_id = await _enqueue_slow(queue, media_dir, slow_clip)
    await spawn_worker(dataclasses.replace(FAST, job_timeout=0.2))
    job = await wait_for_job(queue, operation_id, lambda job: job.finished)
    assert job.status == "failed" and job.error == "The operation ran past its time limit (0.2 s)"
    assert media_files(media_dir) == {slow_clip}
