"""Servers for ``http-crud --peer node`` and ``--ab``: ours and the journal's Node stack, each
pinned, each on a scratch database of its own (perf/servers.py: ours migrated by nve, the Node peer on the
journal's schema, servers.JOURNAL_SCHEMA); reseeding; and the CPU PostgreSQL backends and
redis-server spend, read from ``/proc``.

PostgreSQL backends are attributed to a server by database: every server gets a database of its
own on the same PostgreSQL (``NVE_BENCH_PG``), so ``pg_stat_activity.datname`` names the
backends serving it (its pool, and for ours its LISTEN connections too). redis-server is shared:
its CPU during a scenario is the CPU of the one server then under load.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from perf.servers import PG_ADMIN, ServerProcess, dsn, free_port, sql

NODE_HTTP_PEER = Path(__file__).resolve().parent / "peers" / "node-http"
TICKS = os.sysconf("SC_CLK_TCK")
SEED_ROWS = 100
METADATA_FILES = 50
UNLIMITED = "1000000000"
"""Rate limits of our server, raised far out of the way (writes and uploads per window)."""


def reseed(database: str, rows: int = SEED_ROWS) -> list[int]:
    """The projects table emptied and filled with the same ``rows`` rows (ids 1..rows) every time."""
    from perf.http_crud import TIMELINE

    timeline = json.dumps(TIMELINE).replace("'", "''")
    sql(dsn(database), "TRUNCATE projects RESTART IDENTITY CASCADE",
        "INSERT INTO projects (name, video_filename, video_url, timeline_state) "
        f"SELECT 'perf project ' || i, 'perf-' || i || '.mp4', '/videos/perf-' || i || '.mp4', '{timeline}'::jsonb "
        f"FROM generate_series(0, {rows - 1}) AS i",
        "VACUUM ANALYZE projects")
    return list(range(1, rows + 1))


class Server(ServerProcess):
    """Ours or the Node peer, on ``database`` (the backends serving it are counted by database)."""

    def __init__(self, name: str, command: list[str], port: int, cpu: int | None, database: str,
                 env: dict[str, str]) -> None:
        self.database = database
        super().__init__(name, command, port, cpu, env)

    @classmethod
    def ours(cls, database: str, cpu: int | None, redis_url: str, data_dir: Path) -> Server:
        """``nve serve``: no media workers, no access log, rate limits out of the way."""
        port = free_port()
        command = [sys.executable, "-m", "server.cli", "--log-level", "WARNING", "serve", "--host", "127.0.0.1",
                   "--port", str(port), "--data-dir", str(data_dir), "--workers", "0", "--no-access-log"]
        return cls("ours", command, port, cpu, database,
                   {"DATABASE_URL": dsn(database), "REDIS_URL": redis_url, "NVE_WORKERS": "0",
                    "NVE_RATE_LIMIT_WRITES": UNLIMITED, "NVE_RATE_LIMIT_UPLOADS": UNLIMITED})

    @classmethod
    def node(cls, database: str, cpu: int | None, redis_url: str) -> Server:
        """The journal's Node stack (``perf/peers/node-http``)."""
        port = free_port()
        return cls("node", ["node", str(NODE_HTTP_PEER / "server.js"), "--host", "127.0.0.1", "--port", str(port),
                            "--quiet"], port, cpu, database, {"DATABASE_URL": dsn(database), "REDIS_URL": redis_url})


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


async def _backends(database: str) -> list[int]:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN)
    try:
        return [row["pid"] for row in await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database)]
    finally:
        await connection.close()


def redis_pid(redis_url: str) -> int | None:
    """redis-server's process id, as its INFO tells (None when it is not on this machine's /proc)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    return pid if Path(f"/proc/{pid}/stat").exists() else None


class BackendCpu:
    """CPU seconds the PostgreSQL backends of ``database`` and redis-server spent since :meth:`start`.

    Backends are listed again at the end: one that connected meanwhile counts from zero (its
    connection setup included), one that disconnected meanwhile is lost (pools hold theirs)."""

    def __init__(self, database: str, redis: int | None) -> None:
        self.database, self.redis = database, redis
        self._pg: dict[int, float] = {}
        self._redis = 0.0

    def start(self) -> None:
        self._pg = {pid: cpu_seconds(pid) for pid in asyncio.run(_backends(self.database))}
        self._redis = cpu_seconds(self.redis) if self.redis is not None else 0.0

    def figures(self, requests: int) -> dict[str, float | int | None]:
        pids = asyncio.run(_backends(self.database))
        pg = sum(cpu_seconds(pid) - self._pg.get(pid, 0.0) for pid in pids)
        figures: dict[str, float | int | None] = {
            "pg_backends": len(pids), "pg_us_per_req": 1e6 * pg / requests if requests else None}
        redis = (cpu_seconds(self.redis) - self._redis) if self.redis is not None else None
        figures["redis_us_per_req"] = 1e6 * redis / requests if requests and redis is not None else None
        return figures


@contextmanager
def data_directory() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nve_http_ab_"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def prime_metadata(ours: Server | None, data_dir: Path | None, redis_url: str) -> tuple[str, ...]:
    """Cache ``metadata:{name}`` in Redis for ``METADATA_FILES`` names: with our server, by putting
    a clip under every name in its media directory (hard links) and asking for each once (its
    probe writes the keys, and the Node peer reads those same documents); without it, by writing
    a fixed document. Returns the names (spread over, since our server makes concurrent lookups
    of one file a single flight: over one file most requests would not reach Redis)."""
    names = tuple(f"perf-ab-{index:02d}.mp4" for index in range(METADATA_FILES))
    if ours is not None and data_dir is not None:
        from perf.cache_bench import encode_clip

        media = data_dir / "media"
        media.mkdir(parents=True, exist_ok=True)
        clip = data_dir / "clip.mp4"
        encode_clip(clip)
        for name in names:
            os.link(clip, media / name)
            with urllib.request.urlopen(f"{ours.url}/api/metadata/{name}", timeout=30) as response:
                response.read()
    else:
        import redis

        client = redis.Redis.from_url(redis_url)
        try:
            document = json.dumps({"duration": 2.0, "width": 320, "height": 240, "codec": "h264"})
            for name in names:
                client.set(f"metadata:{name}", document, ex=3600)
        finally:
            client.close()
    return names
