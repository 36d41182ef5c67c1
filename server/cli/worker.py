"""``nve worker``: run media workers alone, on a machine that serves no HTTP.

They need the same PostgreSQL (``DATABASE_URL`` or ``POSTGRES_*``) and the same
``MEDIA_DIR`` as the servers; job events reach every server through PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import uvloop

from core.config import Settings
from core.db.migrations import migrate
from core.jobs.supervisor import Supervisor


def add_worker_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = subparsers.add_parser("worker", help="run media worker processes only (no HTTP)")
    command.add_argument("--workers", type=int, help="worker processes (default cores - 1, env NVE_WORKERS)")
    command.add_argument("--data-dir", type=Path, help="data directory, holds media/ unless MEDIA_DIR is set "
                                                       "(env NVE_DATA_DIR)")


async def _supervise(settings: Settings, dsn: str) -> None:
    await migrate(dsn)
    settings.media_path.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(max(1, settings.workers), dsn, settings.media_path, settings.jobs,
                            grace=settings.shutdown_timeout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await supervisor.start()
    await stop.wait()
    await supervisor.stop()


def run_worker(settings: Settings) -> int:
    """Supervise ``settings.workers`` (at least 1) workers until SIGTERM/SIGINT; the exit status.

    An embedded PostgreSQL belongs to its ``nve serve``: workers alone need a configured one.
    """
    if settings.database_url is None:
        print("nve worker: set DATABASE_URL (or POSTGRES_*) to the servers' PostgreSQL", file=sys.stderr)
        return 2
    uvloop.run(_supervise(settings, settings.database_url))
    return 0
