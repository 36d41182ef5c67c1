"""The media pool: calls run in warm worker processes; timeouts and crashes replace workers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from core.media.errors import UnsupportedMedia
from core.media.pool import MediaPool, WorkerCrashed, WorkerTimeout
from core.media.probe import probe


def pid() -> int:
    return os.getpid()


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def die() -> None:
    os._exit(3)


async def test_probe_runs_in_a_worker(shared_pool: MediaPool, clip: Path, tmp_path: Path) -> None:
    assert await shared_pool.run(pid) != os.getpid()
    info = await shared_pool.run(probe, str(clip))
    assert info["width"] == 320 and info["codec"] == "h264"
    (tmp_path / "x.mp4").write_bytes(b"not a video" * 100)
    with pytest.raises(UnsupportedMedia):
        await shared_pool.run(probe, str(tmp_path / "x.mp4"))


async def test_timeout_replaces_the_worker_and_crash_is_reported() -> None:
    pool = MediaPool(1, modules=())
    await pool.start()
    try:
        first = await pool.run(pid)
        with pytest.raises(WorkerTimeout):
            await pool.run(sleep_then_pid, 30, timeout=0.5)
        second = await pool.run(pid)
        assert second != first
        with pytest.raises(WorkerCrashed):
            await pool.run(die)
        assert await pool.run(pid) not in (first, second)
    finally:
        await pool.close()
    with pytest.raises(RuntimeError):
        await pool.run(pid)


async def test_cold_pool_starts_a_worker_on_first_use() -> None:
    pool = MediaPool(1, modules=(), warm=False)
    await pool.start()
    try:
        assert await pool.run(pid) != os.getpid()
    finally:
        await pool.close()
