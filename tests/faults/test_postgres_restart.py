"""PostgreSQL restarted (``-m immediate``: a crash, then ``-m fast``) under concurrent CRUD and a running job.

The server is not restarted: its pool must find PostgreSQL again on its own, its job
events connection must LISTEN again, and its worker must carry the job to the end. No
acknowledged write may be lost (the rules are those of :mod:`tests.faults.load`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.faults.load import ACKNOWLEDGED, UNAVAILABLE, ProjectLoad
from tests.faults.postgres import PrivatePostgres
from tests.jobs.conftest import FAST, SLOW_EDITS, media_files


async def wait_for_json(http: httpx.AsyncClient, path: str, condition: Any, timeout: float = 30.0) -> dict[str, Any]:
    """GET ``path`` until ``condition(body)`` holds (a generous bound: only a failure waits it out)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await http.get(path)
        body = response.json()
        if condition(body):
            return body
        assert asyncio.get_running_loop().time() < deadline, f"{path} never got there: {response.status_code} {body}"
        await asyncio.sleep(0.05)


async def test_restarts_under_load_lose_no_acknowledged_write_and_need_no_server_restart(
        private_postgres: PrivatePostgres, start_server: Any, media_dir: Path, slow_clip: str) -> None:
    server = await start_server(database_url=private_postgres.dsn, rate_limit_writes=10**6, media_dir=media_dir,
                                jobs=FAST, workers=1)
    load = ProjectLoad(f"http://127.0.0.1:{server.port}")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
        accepted = await http.post("/api/edit/process", json={"filename": slow_clip, "edits": SLOW_EDITS})
        assert accepted.status_code == 202, accepted.text
        operation_id = accepted.json()["operationId"]
        await load.start()
        try:
            await load.wait_until_each_writer(0, 3, ACKNOWLEDGED)
            await wait_for_json(http, f"/api/jobs/{operation_id}", lambda body: body["progress"] > 0)
            # The crash first, while the job renders: its worker must ride it out.
            for mode in ("immediate", "fast"):
                async with load.fault():
                    await private_postgres.stop(mode)
                await load.wait_until_each_writer(load.tick(), 1, frozenset({UNAVAILABLE}))
                await private_postgres.start()
                await load.wait_until_each_writer(load.tick(), 3, ACKNOWLEDGED)
        finally:
            await load.stop()
        await load.check(private_postgres.dsn)

        ready = await wait_for_json(http, "/readyz", lambda body: body.get("jobs", {}).get("events") == "listening")
        assert ready["status"] == "ready" and ready["database"] == "up"
        job = await wait_for_json(http, f"/api/jobs/{operation_id}",
                                  lambda body: body["status"] in ("done", "failed", "cancelled"))
        assert job["status"] == "done", job
    # Whatever attempt finished it, only its output is left beside the source.
    assert media_files(media_dir) == {slow_clip, job["result"]["filename"]}
