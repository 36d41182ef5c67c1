"""Shared fixtures: a throwaway PostgreSQL database per test and a private Redis server.

Both are real servers. PostgreSQL is the machine's (``NVE_TEST_PG``, default
``postgresql://postgres@127.0.0.1:5432/postgres``); every test that asks for ``pg_dsn``
gets a database of its own, created from scratch and dropped afterwards, so tests never
share state. Redis is a ``redis-server`` this test session starts on a free port, so a
test may flush or kill it without touching anything else on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

if TYPE_CHECKING:
    from core.db.pool import Database

ADMIN_DSN = os.environ.get("NVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dsn_for(database: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


PG_HOST = urlsplit(ADMIN_DSN).hostname or "127.0.0.1"
PG_PORT = urlsplit(ADMIN_DSN).port or 5432


def dsn_through(port: int, database: str) -> str:
    """The DSN of ``database`` reached through a proxy listening on 127.0.0.1:``port`` (same login)."""
    parts = urlsplit(ADMIN_DSN)
    login = parts.netloc.rpartition("@")[0]
    return urlunsplit((parts.scheme, f"{login}@127.0.0.1:{port}" if login else f"127.0.0.1:{port}",
                       f"/{database}", parts.query, ""))


@contextlib.asynccontextmanager
async def throwaway_database() -> AsyncIterator[str]:
    """DSN of a fresh, empty database, dropped (connections and all) when the block ends."""
    name = f"nve_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield dsn_for(name)
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    """DSN of a fresh, empty database that is dropped when the test ends."""
    async with throwaway_database() as dsn:
        yield dsn


@pytest.fixture
async def migrated_dsn(pg_dsn: str) -> str:
    """A fresh database with every migration in sql/ applied."""
    from core.db.migrations import migrate

    await migrate(pg_dsn)
    return pg_dsn


class RedisServer:
    """A private ``redis-server`` process that tests may stop and start again."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self._workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            sock.recv(16)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the private Redis, emptied before the test; restarted if a test killed it."""
    if redis_server._process is None or redis_server._process.poll() is not None:
        redis_server.start()
    redis_server.flush()
    yield redis_server.url
    if redis_server._process is None or redis_server._process.poll() is not None:
        redis_server.start()


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item):
    """Run async tests on uvloop, the loop the server runs on in production."""
    import uvloop

    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
async def db(migrated_dsn: str) -> AsyncIterator[Database]:
    """An open connection pool on the test's migrated database."""
    from core.db.pool import Database

    database = Database(migrated_dsn, max_size=8)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
async def start_server(migrated_dsn: str, tmp_path: Path):
    """Start the whole server in-process on a free port; ``await start_server(**settings)``.

    Every server started is stopped (gracefully) when the test ends.
    """
    from core.config import Settings
    from server.cli.serve import start

    running = []

    async def factory(**overrides: object):
        values: dict[str, object] = {
            "host": "127.0.0.1", "port": 0, "data_dir": tmp_path / "data",
            "database_url": migrated_dsn, "redis_url": "redis://127.0.0.1:1/0", "workers": 0,
        }
        values.update(overrides)
        settings = Settings(**values)  # type: ignore[arg-type]
        server = await start(settings, str(values["database_url"]))
        running.append(server)
        return server

    yield factory
    for server in running:
        await server.stop()


@pytest.fixture
async def server(start_server):
    """A running server with default settings; ``server.port`` is where it listens."""
    return await start_server()


@pytest.fixture(scope="session")
def shared_pool():
    """One warm media worker pool for the whole session: warming one (``import av``) costs
    more than most tests, so servers under test use this one instead of their own."""
    from core.media.pool import MediaPool

    pool = MediaPool(1)
    asyncio.run(pool.start())
    yield pool
    asyncio.run(pool.close())


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s 320x240 H.264/AAC MP4."""
    from tests.media.clips import make_clip

    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", seconds=2.0)
