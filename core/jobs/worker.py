"""A worker process: claims jobs from PostgreSQL and runs their media work.

Run one with ``python -m core.jobs.worker`` (the supervisor does; so does ``nve worker``).
It reads ``DATABASE_URL``, ``MEDIA_DIR`` and the :class:`JobSettings` variables.

Why a process with a thread inside: copy-mode media loops hold the GIL for long stretches
(docs/MEDIA.md), so they must not share a process with the server's event loop; and
within the worker, the blocking media function runs in a thread so that this process's
own loop keeps renewing the lease, writing progress and hearing cancel requests.

- Progress: the media function's callback (already throttled to 1 % or 100 ms) hands the
  value to the loop; at most every ``progress_interval`` the newest value is written to
  the job row, whose trigger NOTIFYs it to every server node. Only values above what the
  row holds are written, so progress is monotonic even across attempts; 100 is announced
  by the row itself, once, when the job is marked done.
- Cancel: ``should_cancel`` reads a flag, set when ``nve_job_cancel`` names this job or a
  heartbeat finds ``cancel_requested`` (the NOTIFY is fast, the heartbeat is the net).
- SIGTERM/SIGINT: the running job is stopped the same cooperative way and handed back to
  the queue (the attempt does not count), then the process exits 0.
- Lost lease (a heartbeat finds another owner): the work is abandoned; the job belongs to
  its next attempt.
- Parent gone (the supervisor, often the server, SIGKILLed: the OOM killer): within
  ``PARENT_CHECK`` s the worker stops as on SIGTERM, so a running job is handed back once
  and the process exits 0 instead of living on unsupervised.
- The process lowers its priority (``nice``) and caps codec threads so the server sharing
  the machine stays responsive.

A ``process`` job may run as the parent of chunks other workers render too: core/jobs/parent.py;
the worker is its host (its queue, its media thread, running the chunks it takes itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from core.db.pool import CONNECTION_ERRORS, DbConnection
from core.jobs import operations
from core.jobs.attempt import STOP_CANCEL, STOP_LOST, STOP_SHUTDOWN, STOP_TIMEOUT, Attempt, on_loop
from core.jobs.parent import end_chunks, run_process
from core.jobs.queue import Job, JobQueue
from core.jobs.settings import JobSettings
from core.media.errors import Cancelled, MediaError

log = logging.getLogger("nve.worker")
T = TypeVar("T")

PARENT_ENV = "NVE_WORKER_PARENT"
"""The supervisor's pid; the worker stops when its parent is no longer that process."""

# Errors that mean PostgreSQL or the link to it went away: wait and try again. The same list
# as the server's pool, so that what a restart or crash of PostgreSQL raises (a dead idle
# connection, CrashShutdownError) is ridden out here too, not a crash of the lease keeper.
RETRYABLE = CONNECTION_ERRORS

CHUNK_ROWS_KEPT = 3600.0
"""Seconds the chunk rows of a parent that ended are kept (to look into), before a worker
sweeps them and whatever pieces the parent left (JobQueue.sweep_chunks)."""

STUCK_GRACE = 30.0
"""Seconds a media call may ignore a stop request before the process gives up on it."""
STUCK_EXIT = 70
PARENT_CHECK = 0.5
"""Seconds between two looks at whether the worker still has the parent it was started by."""


class Worker:
    def __init__(self, dsn: str, media_dir: Path, settings: JobSettings | None = None,
                 worker_id: str | None = None, parent_pid: int | None = None) -> None:
        self.dsn = dsn
        self.media_dir = media_dir
        self.settings = settings or JobSettings()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._parent_pid = parent_pid
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._listener: asyncpg.Connection[asyncpg.Record] | None = None
        self._queue: JobQueue | None = None
        self._wake = asyncio.Event()
        self._running: dict[str, Attempt] = {}
        """The attempts under way: one job, or a parent and the chunk this worker renders for it."""
        self._reaped_at = float("-inf")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nve-media")

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until ``stop`` is set; a running job is handed back first."""
        log.info("worker %s started (media in %s)", self.worker_id, self.media_dir)
        watcher = asyncio.create_task(self._watch_parent(stop)) if self._parent_pid is not None else None
        try:
            while not stop.is_set():
                try:
                    await self._connect()
                    await self.reap()
                    self._wake.clear()
                    job = await self.queue.claim(self.worker_id, self.settings.lease_seconds)
                    if job is not None:
                        await self.execute(job, stop)
                        continue
                except RETRYABLE as error:
                    log.warning("worker %s: PostgreSQL unreachable (%s); retrying", self.worker_id, error)
                    await self._disconnect()
                await self._idle(stop)
        finally:
            if watcher is not None:
                watcher.cancel()
            await self._disconnect()
            self._executor.shutdown(wait=True)
            log.info("worker %s stopped", self.worker_id)

    @property
    def queue(self) -> JobQueue:
        assert self._queue is not None
        return self._queue

    # -- connections ----------------------------------------------------------------------

    async def _connect(self) -> None:
        if self._pool is None:
            # Three: a parent's loop, its lease keeper and that of the chunk it renders may each hold one.
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=3, timeout=2,
                server_settings={"timezone": "UTC", "application_name": "nve-worker"})
            self._queue = JobQueue(self._pool.acquire, self.settings.max_attempts)
        if self._listener is None or self._listener.is_closed():
            self._listener = await asyncpg.connect(self.dsn, timeout=2)
            await self._listener.add_listener("nve_jobs_queued", self._on_queued)
            await self._listener.add_listener("nve_job_cancel", self._on_cancel)

    async def _disconnect(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listener.close(), 2)
            self._listener = None
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), 2)
            self._pool.terminate()
            self._pool = None

    def _on_queued(self, *_: Any) -> None:
        self._wake.set()

    def _on_cancel(self, _connection: DbConnection, _pid: int, _channel: str, operation_id: object) -> None:
        """A NOTIFY on nve_job_cancel; its payload (asyncpg passes a str) is the operation id."""
        attempt = self._running.get(str(operation_id))
        if attempt is not None:
            attempt.stop(STOP_CANCEL)

    async def _watch_parent(self, stop: asyncio.Event) -> None:
        """Set ``stop`` once the parent is gone (this process was reparented).

        The whole worker stops, not only its attempt: stopping the attempt alone handed the
        job back and let the loop claim it again at once, over and over.
        """
        while os.getppid() == self._parent_pid:
            await asyncio.sleep(PARENT_CHECK)
        log.warning("worker %s: supervisor gone, stopping", self.worker_id)
        stop.set()

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for a NOTIFY, ``stop`` or the poll interval (expired leases need a look too)."""
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=self.settings.poll_interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def reap(self) -> None:
        """Return expired leases to the queue (and sweep old chunk rows), at most once per poll interval."""
        now = asyncio.get_running_loop().time()
        if now - self._reaped_at < self.settings.poll_interval:
            return
        self._reaped_at = now
        for reaped in await self.queue.reap(self._clean_up_reaped):
            log.warning("job %s lost its worker (attempt %d): now %s", reaped.operation_id, reaped.attempts,
                        reaped.status)
        for parent_id in await self.queue.sweep_chunks(CHUNK_ROWS_KEPT, self.remove_pieces):
            log.info("job %s: its chunk rows swept", parent_id)

    # -- one job --------------------------------------------------------------------------

    async def execute(self, job: Job, stop: asyncio.Event, parent: Attempt | None = None) -> None:
        """Run ``job`` (claimed by this worker; a chunk of ``parent``'s job when given) to its
        recorded end: done, failed, cancelled, handed back, or abandoned with a lost lease."""
        # The outputs are the job owner's before they exist: no request can find one unowned.
        # (A chunk's are hidden pieces of its parent's, which no request can name.)
        names = operations.output_names(job.operation, job.operation_id, job.attempts, job.params)
        await self.queue.record_outputs(job.owner, [name for name in names if not name.startswith(".")])
        attempt = self._running[job.operation_id] = Attempt(job, parent)
        log.info("job %s (%s) attempt %d started", job.operation_id, job.operation, job.attempts)
        keeper = asyncio.create_task(self._keep(attempt, stop))
        result: dict[str, Any] | None = None
        error: str | None = None
        try:
            try:
                if job.operation == "process":
                    result = await run_process(self, attempt, stop)
                else:
                    result = await self.media(attempt, job.operation, job.operation_id, job.attempts,
                                              job.params, self.media_dir)
            except Cancelled:
                pass
            except MediaError as failure:
                error = str(failure)
            except Exception as failure:
                log.exception("job %s failed unexpectedly", job.operation_id)
                error = f"Internal error while running {job.operation} ({type(failure).__name__})"
            if job.operation == "process" and result is None and attempt.ends(error):
                await end_chunks(self, job)  # the lease is still kept meanwhile
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            del self._running[job.operation_id]
        await self._conclude(attempt, result, error)

    async def media(self, attempt: Attempt, *args: Any) -> dict[str, Any]:
        """``operations.run(*args, progress, should_cancel, codec_threads)`` in the media thread."""
        result: dict[str, Any] = await self.blocking(operations.run, *args, on_loop(attempt.report),
                                                     attempt.stopping.is_set, self.settings.codec_threads)
        return result

    async def blocking(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the media thread (one at a time: the worker's one media call)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def _keep(self, attempt: Attempt, stop: asyncio.Event) -> None:
        """While the media thread works: write progress, renew the lease, watch for stop and time.

        A media call stuck inside FFmpeg cannot be interrupted: once it ignored a stop for
        ``STUCK_GRACE`` s past the time limit, the job is failed and the process exits (the
        supervisor starts a fresh one).
        """
        job = attempt.job
        beat_every = self.settings.heartbeat_interval
        since_beat = elapsed = 0.0
        while True:
            await asyncio.sleep(self.settings.progress_interval)
            since_beat += self.settings.progress_interval
            elapsed += self.settings.progress_interval
            if stop.is_set():
                attempt.stop(STOP_SHUTDOWN)
            attempt.follow_parent()
            if elapsed >= self.settings.job_timeout:
                attempt.stop(STOP_TIMEOUT)
            if elapsed >= self.settings.job_timeout + STUCK_GRACE:
                log.error("job %s: the media call ignores its stop; exiting", job.operation_id)
                await self.queue.fail(job.operation_id, self.worker_id, self._timeout_text())
                self._remove_outputs(job)
                os._exit(STUCK_EXIT)
            try:
                await self._flush(attempt)
                if since_beat >= beat_every:
                    since_beat = 0.0
                    cancel = await self.queue.heartbeat(job.operation_id, self.worker_id,
                                                        self.settings.lease_seconds)
                    if cancel is None:
                        attempt.stop(STOP_LOST)
                    elif cancel:
                        attempt.stop(STOP_CANCEL)
            except RETRYABLE as failure:  # the lease may yet be renewed before it expires
                log.warning("job %s: heartbeat failed (%s)", job.operation_id, failure)

    async def _flush(self, attempt: Attempt) -> None:
        if attempt.pending is None or attempt.reason is not None:
            return
        percent, message = attempt.pending
        attempt.pending = None
        if await self.queue.progress(attempt.job.operation_id, self.worker_id, percent, message):
            attempt.published = percent
        else:
            attempt.stop(STOP_LOST)

    async def _conclude(self, attempt: Attempt, result: dict[str, Any] | None, error: str | None) -> None:
        """Record the attempt's outcome; whatever did not succeed leaves no output behind.

        A parent's pieces go once it has ended (done, failed, cancelled), not when it is
        handed back or its lease was lost: its next attempt reuses them.
        """
        job, queue, me = attempt.job, self.queue, self.worker_id
        op = job.operation_id
        if result is not None and attempt.reason != STOP_LOST:
            if await queue.complete(op, me, result):
                log.info("job %s done", op)
                self.remove_pieces(op)
                return
        self._remove_outputs(job)
        if attempt.reason == STOP_LOST:
            log.warning("job %s: lease lost, attempt %d abandoned", op, job.attempts)
            return
        if error is None and attempt.reason == STOP_SHUTDOWN and await queue.hand_back(op, me):
            log.info("job %s handed back", op)
            return
        if error is not None and await queue.fail(op, me, error):
            log.info("job %s failed: %s", op, error)
        elif attempt.reason == STOP_TIMEOUT and await queue.fail(op, me, self._timeout_text()):
            log.warning("job %s ran past its time limit", op)
        elif await queue.finish_cancelled(op, me):
            log.info("job %s cancelled", op)
        self.remove_pieces(op)

    def _timeout_text(self) -> str:
        return f"The operation ran past its time limit ({self.settings.job_timeout:g} s)"

    def _remove_outputs(self, job: Job) -> None:
        operations.remove_outputs(self.media_dir, job.operation, job.operation_id, job.attempts, job.params)

    def remove_pieces(self, parent_id: str) -> None:
        operations.remove_pieces(self.media_dir, parent_id)

    def _clean_up_reaped(self, job: Job) -> None:
        """What a lost attempt left; a parent's pieces too if the reaper ends it (no attempt left, or cancelled)."""
        self._remove_outputs(job)
        if job.cancel_requested or job.attempts >= job.max_attempts:
            self.remove_pieces(job.operation_id)


def configure_process(settings: JobSettings) -> None:
    """Lower this process's priority so the server's event loop wins the CPU."""
    if settings.nice:
        with contextlib.suppress(OSError):
            os.nice(settings.nice)


async def serve_worker(dsn: str, media_dir: Path, settings: JobSettings, parent_pid: int | None) -> None:
    """Run one worker until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await Worker(dsn, media_dir, settings, parent_pid=parent_pid).run(stop)


def main() -> int:
    import uvloop

    logging.basicConfig(level=os.environ.get("NVE_LOG_LEVEL", "INFO").upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    settings = JobSettings.from_env()
    configure_process(settings)
    parent = os.environ.get(PARENT_ENV)
    media_dir = Path(os.environ["MEDIA_DIR"])
    media_dir.mkdir(parents=True, exist_ok=True)
    uvloop.run(serve_worker(os.environ["DATABASE_URL"], media_dir, settings,
                            int(parent) if parent else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
