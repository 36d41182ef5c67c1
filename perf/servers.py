"""Servers under test as child processes, and the scratch databases they run on.

What every scenario that starts servers of its own shares (``ws-fanout``, ``http-crud --peer
node`` and ``--ab``): a free port, a statement on the admin connection of ``NVE_BENCH_PG``, a
throwaway database (created, optionally migrated by ``nve migrate``, dropped with FORCE), a
server process pinned with ``taskset`` that counts as up once its ``/healthz`` answers, and why
a Node peer cannot start (the harness never installs one itself).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_ADMIN = os.environ.get("NVE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parents[1]
JOURNAL_SCHEMA = ROOT / "sql" / "001_initial_schema.sql"
"""The design journal's schema (section 4.1, with its indexes and updated_at trigger): the Node peer
runs on it, so each stack is measured doing the database work its own design asks for."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dsn(database: str) -> str:
    """``database`` on ``PG_ADMIN``'s server, with its login."""
    return f"{PG_ADMIN.rpartition('/')[0]}/{database}"


async def _execute(url: str, *statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def sql(url: str, *statements: str) -> None:
    """Run ``statements`` in order on a connection of their own to ``url``."""
    asyncio.run(_execute(url, *statements))


@contextmanager
def scratch_database(prefix: str, *, migrate: bool = False, schema: Path | None = None) -> Iterator[str]:
    """A database created on ``PG_ADMIN``'s server (migrated by ``nve migrate`` when asked: a server
    that migrates on start needs no help; or given the one SQL file ``schema``), dropped at the end
    whatever is still connected."""
    database = f"{prefix}_{uuid.uuid4().hex[:8]}"
    sql(PG_ADMIN, f'CREATE DATABASE "{database}"')
    try:
        if schema is not None:
            sql(dsn(database), schema.read_text(encoding="utf-8"))
        if migrate:
            subprocess.run([sys.executable, "-m", "server.cli", "--log-level", "WARNING", "migrate"], cwd=ROOT,
                           env={**os.environ, "DATABASE_URL": dsn(database)}, check=True, stdout=subprocess.DEVNULL)
        yield database
    finally:
        sql(PG_ADMIN, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


class ServerProcess:
    """A server in a child process (pinned with ``taskset`` to ``cpu`` unless None) listening on
    127.0.0.1:``port``, up once ``/healthz`` answers; ``env`` is added to this process's environment."""

    def __init__(self, name: str, command: list[str], port: int, cpu: int | None,
                 env: dict[str, str] | None = None) -> None:
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        if cpu is not None:
            command = ["taskset", "-c", str(cpu), *command]
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})})
        self.pid = self.process.pid  # taskset execs the server: the same process
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the {name} server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def node_peer_missing(peer: Path) -> str | None:
    """Why the Node peer in ``peer`` cannot start (no ``node``, or its ``node_modules`` not installed),
    or None. The harness never installs it itself: the message names the one command that does."""
    if shutil.which("node") is None:
        return "--peer node needs Node.js (v20 or later) on PATH: `node` was not found"
    if not (peer / "node_modules").is_dir():
        return (f"--peer node: {peer / 'node_modules'} is missing. Install it once (from the npm registry, "
                f"the versions in package-lock.json) with:\n    npm ci --prefix {peer}")
    return None
