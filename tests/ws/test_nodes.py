"""Two `nve serve` processes sharing one Redis: progress published on one reaches the other's clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import free_port


async def wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            if process.poll() is not None:
                raise AssertionError(f"nve serve exited with {process.returncode}")
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("nve serve did not become healthy")


@pytest.fixture
async def node(migrated_dsn: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., int]]:
    processes: list[subprocess.Popen[bytes]] = []

    async def start(**env: str) -> int:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "--log-level", "WARNING", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--data-dir", str(tmp_path / f"node-{port}"), "--workers", "0"],
            env={**os.environ, "DATABASE_URL": migrated_dsn, "REDIS_URL": redis_url, **env},
            cwd=Path(__file__).parents[2],
        )
        processes.append(process)
        await wait_healthy(port, process)
        return port

    yield start  # type: ignore[misc]
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_progress_published_on_one_process_reaches_the_other(node) -> None:
    a = await node(NVE_BENCH="1")
    b = await node()
    async with websockets.connect(f"ws://127.0.0.1:{b}/ws") as on_b:
        assert json.loads(await asyncio.wait_for(on_b.recv(), 10))["type"] == "ping"
        async with httpx.AsyncClient() as http:
            for _ in range(100):  # b subscribes to the Redis channel in the background
                ready = (await http.get(f"http://127.0.0.1:{b}/readyz")).json()
                if ready.get("websocket", {}).get("bus") == "up":
                    break
                await asyncio.sleep(0.05)
            answer = await http.post(f"http://127.0.0.1:{a}/api/_bench/broadcast",
                                     json={"count": 3, "operationId": "nodes-1"})
            assert answer.status_code == 202
            assert (await http.post(f"http://127.0.0.1:{b}/api/_bench/broadcast",
                                    json={"count": 3, "operationId": "x"})).status_code == 404
        got = []
        while len(got) < 3:
            message = json.loads(await asyncio.wait_for(on_b.recv(), 10))
            if message["type"] == "progress":
                got.append(message["data"])
        assert [m["operationId"] for m in got] == ["nodes-1"] * 3
        assert [m["progress"] for m in got] == sorted(m["progress"] for m in got)
