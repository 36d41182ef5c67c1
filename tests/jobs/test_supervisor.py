"""The supervisor keeps its worker processes alive and stops them cleanly."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from core.access.owners import LOCAL
from core.jobs import operations
from core.jobs.queue import JobQueue
from core.jobs.supervisor import Supervisor
from tests.jobs.conftest import FAST, wait_for_job


async def test_a_crashed_worker_is_restarted_and_stop_ends_them_all(
        queue: JobQueue, migrated_dsn: str, media_dir: Path, clip: str) -> None:
    supervisor = Supervisor(2, migrated_dsn, media_dir, FAST, grace=5)
    await supervisor.start()
    try:
        while not all(supervisor.processes):
            await asyncio.sleep(0.01)
        crashed = supervisor.processes[0]
        crashed.send_signal(signal.SIGKILL)
        await crashed.wait()
        while supervisor.processes[0] is crashed:
            await asyncio.sleep(0.01)
        assert supervisor.restarts == 1 and supervisor.processes[0].returncode is None

        operation_id = operations.new_operation_id("trim")
        await queue.enqueue(LOCAL, operation_id, "trim", operations.trim_params(
            {"filename": clip, "startTime": 0, "endTime": 1}, media_dir))
        assert (await wait_for_job(queue, operation_id, lambda job: job.finished)).status == "done"
    finally:
        await supervisor.stop()
    restarted, steady = supervisor.processes
    assert steady.returncode == 0  # a SIGTERM while a fresh worker still imports may end it with -15
    assert restarted.returncode in (0, -signal.SIGTERM)
    assert supervisor.restarts == 1
