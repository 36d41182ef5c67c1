"""Supervisor: keeps N local worker processes running (``nve serve`` and ``nve worker``).

Each worker is ``python -m core.jobs.worker``, a fresh interpreter (never a fork of a
server that holds sockets, pools and an event loop), configured through its environment:
``DATABASE_URL``, ``MEDIA_DIR``, the :class:`JobSettings` variables and the supervisor's
pid (a worker whose parent vanished stops by itself). A worker that exits while the
supervisor runs is restarted after ``min(n * 0.5 s, 5 s)`` for its n-th quick failure in a
row. :meth:`Supervisor.stop` sends SIGTERM (each worker hands its job back), waits up to
``grace`` seconds, then kills what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

from core.jobs.settings import JobSettings
from core.jobs.worker import PARENT_ENV
from core.tasks import cancel_and_wait

log = logging.getLogger("nve.supervisor")

STABLE_AFTER = 10.0
"""A worker that ran this long before exiting restarts at once (its failure count resets)."""


def restart_delay(failures: int) -> float:
    return min(failures * 0.5, 5.0)


class Supervisor:
    def __init__(self, count: int, dsn: str, media_dir: Path, settings: JobSettings | None = None,
                 grace: float = 10.0) -> None:
        self.count = count
        self.dsn = dsn
        self.media_dir = media_dir
        self.settings = settings or JobSettings()
        self.grace = grace
        self.processes: list[asyncio.subprocess.Process | None] = [None] * count
        self.restarts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.to_env())
        env.update({"DATABASE_URL": self.dsn, "MEDIA_DIR": str(self.media_dir), PARENT_ENV: str(os.getpid())})
        return env

    async def start(self) -> None:
        self._stopping = False
        self._tasks = [asyncio.create_task(self._keep(slot), name=f"nve-worker-{slot}")
                       for slot in range(self.count)]

    async def _spawn(self, slot: int) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "core.jobs.worker", env=self._environment(),
            cwd=str(Path(__file__).resolve().parents[2]), stdin=asyncio.subprocess.DEVNULL)
        self.processes[slot] = process
        log.info("worker %d started (pid %d)", slot, process.pid)
        return process

    async def _keep(self, slot: int) -> None:
        failures = 0
        while not self._stopping:
            started = time.monotonic()
            process = await self._spawn(slot)
            code = await process.wait()
            if self._stopping:
                return
            failures = 0 if time.monotonic() - started > STABLE_AFTER else failures + 1
            self.restarts += 1
            log.warning("worker %d (pid %d) exited with %s; restarting", slot, process.pid, code)
            await asyncio.sleep(restart_delay(failures))

    async def stop(self) -> None:
        """SIGTERM every worker, wait up to ``grace`` s for them to hand back their jobs, kill the rest."""
        self._stopping = True
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        alive = [p for p in self.processes if p is not None and p.returncode is None]
        for process in alive:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if alive:
            _, pending = await asyncio.wait([asyncio.ensure_future(p.wait()) for p in alive], timeout=self.grace)
            if pending:
                log.warning("%d worker(s) did not stop within %.0f s; killing", len(pending), self.grace)
                for process in alive:
                    if process.returncode is None:
                        with contextlib.suppress(ProcessLookupError):
                            process.kill()
                await asyncio.wait(pending)
