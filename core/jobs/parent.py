"""A ``process`` job run as the parent of its chunks: one render over many workers (issue #16).

A ``process`` job that is a full re-encode of two chunks or more (``render_chunk_seconds``,
core/jobs/operations.py ``chunk_plan``) runs as a PARENT. Its worker queues the chunks as
jobs (``render-chunk``, one transaction, only while it holds the parent's lease), which any
worker of any node claims the ordinary way; it renders the audio in one piece, then claims
and renders its own job's chunks while any are queued (one worker alone finishes the job),
waits for those others run (a short poll of the chunk rows), joins them by stream copy and
returns the job's result. Meanwhile it publishes ONE progress: the audio's, the chunks'
(each weighted by its frames, read from the chunk rows, which are monotonic themselves) and
the join's.

- A chunk is a job: leased, heartbeated, reaped and re-run when its worker dies (its
  partial file removed), cancelled through its row. A chunk this worker runs for its own
  parent stops with the parent (a cancel cancels it, anything else hands it back).
- A chunk that fails (a media error, or its attempts spent) fails the parent with the
  chunk's error; a parent that ends without its result (failed, cancelled, out of time)
  stops every chunk (sql/006_render_chunks.sql does it for any writer): the worker then
  calls :func:`end_chunks`, which waits a little for the running ones and removes the pieces.
- The parent's worker dying loses no finished chunk: the parent is reaped and requeued,
  and its next attempt finds the chunk rows (and the audio file) and reuses what is done.

The worker running it is the :class:`Host` (core/jobs/worker.py): its queue, its media
thread, and its way of running a job, used here for the chunks it takes itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.db.pool import CONNECTION_ERRORS
from core.jobs import operations
from core.jobs.attempt import STOP_LOST, Attempt, on_loop
from core.jobs.queue import Job, JobQueue
from core.jobs.settings import JobSettings
from core.media.errors import Cancelled, MediaError

log = logging.getLogger("nve.worker")
T = TypeVar("T")

AUDIO_SHARE = 0.04
JOIN_SHARE = 0.04
"""A parent's progress: the audio up to ``AUDIO_SHARE``, the join the last ``JOIN_SHARE``, the chunks between."""


class Host(Protocol):
    """What a parent needs of the worker running it."""

    worker_id: str
    media_dir: Path
    settings: JobSettings

    @property
    def queue(self) -> JobQueue: ...

    async def blocking(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the worker's media thread."""

    async def media(self, attempt: Attempt, *args: Any) -> dict[str, Any]:
        """``operations.run(*args, ...)`` for ``attempt`` in the media thread."""

    async def execute(self, job: Job, stop: asyncio.Event, parent: Attempt | None = None) -> None:
        """Run one claimed job to its end (here: a chunk of ``parent``)."""

    async def reap(self) -> None:
        """Requeue the jobs whose lease expired."""

    def remove_pieces(self, parent_id: str) -> None:
        """Delete the pieces of parent ``parent_id``."""


async def run_process(host: Host, attempt: Attempt, stop: asyncio.Event) -> dict[str, Any]:
    """Run a ``process`` job: in one piece, or as the parent of its chunks (module docstring)."""
    job = attempt.job
    chunks = await host.queue.chunks(job.operation_id)  # a later attempt reuses what the first queued
    if not chunks:
        planned = await host.blocking(operations.chunk_plan, host.media_dir, job.params,
                                      host.settings.render_chunk_seconds)
        if not planned:
            return await host.media(attempt, job.operation, job.operation_id, job.attempts, job.params,
                                    host.media_dir)
        chunks = await host.queue.add_chunks(
            job, host.worker_id, operations.CHUNK,
            [(operations.chunk_id(job.operation_id, index), params) for index, params in enumerate(planned)])
        if not chunks:
            attempt.stop(STOP_LOST)
            raise Cancelled()
        log.info("job %s: %d chunks queued", job.operation_id, len(chunks))
    else:
        log.info("job %s: attempt %d resumes %d chunks (%d done)", job.operation_id, job.attempts, len(chunks),
                 sum(chunk.status == "done" for chunk in chunks))
    return await _parent(host, attempt, stop, len(chunks))


async def _parent(host: Host, attempt: Attempt, stop: asyncio.Event, count: int) -> dict[str, Any]:
    job = attempt.job
    audio_done = 0.0

    def audio_progress(fraction: float, _message: str | None = None) -> None:
        nonlocal audio_done
        audio_done = max(audio_done, min(fraction, 1.0))

    audio = asyncio.ensure_future(host.blocking(
        operations.render_audio_piece, host.media_dir, job.operation_id, job.params, on_loop(audio_progress),
        attempt.stopping.is_set))
    own: asyncio.Future[None] | None = None  # a chunk of this job this worker renders
    try:
        chunks: list[Job] = []
        while True:
            if audio.done():
                audio.result()  # its failure is the job's
            if own is not None and own.done():
                own.result()  # what it could not record (PostgreSQL gone) is this attempt's too
                own = None
            await host.reap()  # none but this worker may be left to requeue a chunk whose worker died
            chunks = await host.queue.chunks(job.operation_id)
            attempt.report(parent_fraction(chunks, audio_done if not audio.done() else 1.0),
                           f"Rendered {sum(chunk.status == 'done' for chunk in chunks)} of {count} chunks")
            broken = next((chunk for chunk in chunks if chunk.status in ("failed", "cancelled")), None)
            if attempt.stopping.is_set():
                raise Cancelled()
            if broken is not None:  # the parent fails with the chunk's own words
                raise MediaError(broken.error or f"Chunk {broken.operation_id} was {broken.status}")
            if audio.done() and own is None and all(chunk.status == "done" for chunk in chunks):
                break
            if audio.done() and own is None:
                claimed = await host.queue.claim(host.worker_id, host.settings.lease_seconds, job.operation_id)
                if claimed is not None:
                    own = asyncio.ensure_future(host.execute(claimed, stop, parent=attempt))
                    continue
            busy = audio if not audio.done() else own
            if busy is None:
                await asyncio.sleep(host.settings.progress_interval)
            else:
                await asyncio.wait({busy}, timeout=host.settings.progress_interval)
    except BaseException:
        if attempt.reason is None:  # failing: this worker's own chunk is stopped as the others are
            with contextlib.suppress(*CONNECTION_ERRORS):
                await host.queue.stop_chunks(job.operation_id)
        for work in (audio, own):
            if work is not None:
                with contextlib.suppress(BaseException):
                    await work
        raise
    audio_name = audio.result()
    results = [chunk.result or {} for chunk in chunks]
    chunk_share = 1.0 - JOIN_SHARE

    def join_progress(fraction: float, message: str | None = None) -> None:
        attempt.report(chunk_share + JOIN_SHARE * fraction, message)

    return await host.blocking(operations.join_pieces, host.media_dir, job.operation_id, job.attempts,
                               job.params, results, audio_name, on_loop(join_progress), attempt.stopping.is_set)


async def end_chunks(host: Host, job: Job) -> None:
    """A parent ends without its result: stop its chunks, give the running ones a lease's
    time to stop (their workers remove their own files), then remove every piece."""
    try:
        await host.queue.stop_chunks(job.operation_id)
        deadline = asyncio.get_running_loop().time() + host.settings.lease_seconds
        while asyncio.get_running_loop().time() < deadline:
            await host.reap()  # a chunk whose worker died is done with once its lease is reaped
            if not any(chunk.status == "running" for chunk in await host.queue.chunks(job.operation_id)):
                break
            await asyncio.sleep(host.settings.progress_interval)
    except CONNECTION_ERRORS as failure:
        log.warning("job %s: its chunks were not stopped (%s)", job.operation_id, failure)
    host.remove_pieces(job.operation_id)


def parent_fraction(chunks: list[Job], audio: float) -> float:
    """A parent's progress: its audio, then its chunks weighted by their frames (their rows'
    progress: monotonic across attempts), before the join's share."""
    total = sum(float(chunk.params.get("weight", 1.0)) for chunk in chunks) or 1.0
    rendered = sum(float(chunk.params.get("weight", 1.0)) * (1.0 if chunk.status == "done" else chunk.progress / 100)
                   for chunk in chunks)
    return AUDIO_SHARE * audio + (1.0 - AUDIO_SHARE - JOIN_SHARE) * rendered / total
