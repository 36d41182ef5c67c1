"""Fixtures of the job tests: a queue on a fresh database, worker processes, a jobs-enabled server.

Leases are short (1 s) and polls frequent so that lost workers are noticed within a
second or two; everything else is the production code path: real PostgreSQL, real
``python -m core.jobs.worker`` processes, a real server with its WebSocket hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.access.owners import LOCAL
from core.db.pool import Database
from core.jobs.queue import Job, JobQueue
from core.jobs.settings import JobSettings
from core.storage import CACHE_DIR
from tests.media.clips import make_clip

ROOT = Path(__file__).resolve().parents[2]
FAST = JobSettings(lease_seconds=1.0, poll_interval=0.2, max_attempts=2, progress_interval=0.05, nice=0,
                   codec_threads=1)
SLOW_EDITS = [{"type": "speed", "factor": 0.25}]
"""A render of ``slow_clip`` with these edits runs for a second or two: time to act mid-job."""


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    path = tmp_path / "media"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test clips, written once per session (copied into each test's MEDIA_DIR)."""
    directory = tmp_path_factory.mktemp("clips")
    make_clip(directory / "clip.mp4", seconds=2)
    make_clip(directory / "slow.mp4", seconds=4)
    return directory


@pytest.fixture(scope="session")
def long_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clip whose render with ``SLOW_EDITS`` lasts long enough to split among workers
    (tests/jobs/test_chunked_render.py): 6 s of 640x480 with a keyframe every second."""
    directory = tmp_path_factory.mktemp("long")
    make_clip(directory / "long.mp4", seconds=6, width=640, height=480, gop=25)
    return directory


@pytest.fixture
def long_clip(long_clips: Path, media_dir: Path) -> str:
    shutil.copy(long_clips / "long.mp4", media_dir)
    return "long.mp4"


@pytest.fixture
def clip(clips: Path, media_dir: Path) -> str:
    shutil.copy(clips / "clip.mp4", media_dir)
    return "clip.mp4"


@pytest.fixture
def slow_clip(clips: Path, media_dir: Path) -> str:
    shutil.copy(clips / "slow.mp4", media_dir)
    return "slow.mp4"


@pytest.fixture
def queue(db: Database) -> JobQueue:
    return JobQueue(db.acquire, FAST.max_attempts)


async def wait_for_job(queue: JobQueue, operation_id: str, predicate: Callable[[Job], bool],
                       timeout: float = 30.0) -> Job:
    """Poll the job row until ``predicate`` holds (a generous timeout: only a failure waits it out)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = await queue.get(LOCAL, operation_id)
        assert job is not None
        if predicate(job):
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job never reached the expected state: {job}")
        await asyncio.sleep(0.01)


async def finished_over_http(http: httpx.AsyncClient, operation_id: str) -> dict[str, Any]:
    """Poll ``GET /api/jobs/:operationId`` until the job has finished; its last state."""
    for _ in range(3000):
        body = (await http.get(f"/api/jobs/{operation_id}")).json()
        if body["status"] in ("done", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"{operation_id} did not finish: {body}")


def media_files(media_dir: Path) -> set[str]:
    """Every file in MEDIA_DIR, hidden temporaries included (not the cache of derived files:
    the description and keyframe index ``process`` stores of its source)."""
    return {path.name for path in media_dir.iterdir()} - {CACHE_DIR}


SpawnWorker = Callable[..., Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def spawn_worker(migrated_dsn: str, media_dir: Path) -> AsyncIterator[SpawnWorker]:
    """Start ``python -m core.jobs.worker`` processes; all are killed when the test ends."""
    started: list[asyncio.subprocess.Process] = []

    async def spawn(settings: JobSettings = FAST) -> asyncio.subprocess.Process:
        env = {**os.environ, **settings.to_env(), "DATABASE_URL": migrated_dsn, "MEDIA_DIR": str(media_dir),
               "NVE_WORKER_PARENT": str(os.getpid())}
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "core.jobs.worker", env=env,
                                                       cwd=str(ROOT), stdin=asyncio.subprocess.DEVNULL)
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
            await process.wait()


@pytest.fixture
async def jobs_server(start_server: Any, redis_url: str, media_dir: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await jobs_server(workers=N)``: a running server with fast job settings and a real hub."""

    async def factory(**overrides: Any) -> Any:
        return await start_server(media_dir=media_dir, redis_url=redis_url, jobs=FAST, **overrides)

    yield factory
