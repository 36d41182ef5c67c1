"""``nve serve`` killed with SIGKILL, workers and all, while one job renders and two wait; then started again.

tests/cluster kills one node of three and a survivor finishes its job; tests/jobs kills a
worker alone. Here nothing survives: the only server and its worker die together, so the
jobs wait in the table alone until a new server starts. It must carry every one to the
end (the running one again, once its dead lease expires; 1 s here), lose no project,
and leave MEDIA_DIR with the outputs and nothing of the killed attempt.

The OOM killer kills the server process alone: then its children (the job worker, the
warm media pool and multiprocessing's resource tracker) must notice and exit by
themselves, the worker handing its job back once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.conftest import free_port
from tests.jobs.conftest import FAST, ROOT, SLOW_EDITS, media_files

LONGER_EDITS = [*SLOW_EDITS, {"type": "scale", "width": 1280, "height": 960}]
"""A render of ``slow_clip`` that runs for seconds: SLOW_EDITS alone may be done (in half a
second) before an orphaned worker notices its server is gone (PARENT_CHECK)."""

START_TIMEOUT = 60.0
ORPHANS_EXIT_WITHIN = 15.0
"""Generous for a loaded machine: a worker looks for its parent every 0.5 s."""


class Serve:
    """``nve serve`` as production runs it, in a session of its own: its workers share its process group."""

    def __init__(self, database_url: str, media_dir: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"serve-{self.port}.log"
        env = {**os.environ, **FAST.to_env(), "DATABASE_URL": database_url, "MEDIA_DIR": str(media_dir),
               "REDIS_URL": "redis://127.0.0.1:1/0", "NVE_WORKERS": "1"}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "--log-level", "WARNING", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--data-dir", str(workdir / "data"), "--no-access-log"],
                env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    async def ready(self, http: httpx.AsyncClient) -> None:
        """Until /readyz answers and the worker process runs."""
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while True:
            assert self.process.poll() is None, self.log.read_text(errors="replace")[-2000:]
            try:
                ready = await http.get(f"{self.url}/readyz")
                if ready.status_code == 200 and ready.json()["jobs"].get("workers") == 1:
                    return
            except httpx.TransportError:
                pass
            assert asyncio.get_running_loop().time() < deadline, "nve serve did not become ready"
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL the whole process group (a machine lost), and make sure none of it lives on."""
        os.killpg(self.process.pid, signal.SIGKILL)
        await asyncio.to_thread(self.process.wait)
        for _ in range(500):  # a worker is reparented and reaped a moment after the leader
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("a process of the killed server's group outlived it")

    def group(self) -> dict[int, str]:
        """The live (not zombie) processes of the server's group but the server: pid -> command line."""
        members = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.process.pid:
                continue
            try:
                state, _, group = (entry / "stat").read_text().rpartition(")")[2].split()[:3]
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ValueError):
                continue  # exited meanwhile
            if int(group) == self.process.pid and state != "Z":
                members[int(entry.name)] = command
        return members

    async def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, 30)


async def job_states(http: httpx.AsyncClient, url: str, operation_ids: list[str]) -> list[dict[str, Any]]:
    return [(await http.get(f"{url}/api/jobs/{operation_id}")).json() for operation_id in operation_ids]


async def test_jobs_and_projects_survive_a_sigkill_of_the_whole_server(
        migrated_dsn: str, media_dir: Path, slow_clip: str, clips: Path, tmp_path: Path) -> None:
    shutil.copy(clips / "clip.mp4", media_dir)
    first = Serve(migrated_dsn, media_dir, tmp_path)
    second: Serve | None = None
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            await first.ready(http)
            projects = []
            for index in range(5):
                created = await http.post(f"{first.url}/api/projects", json={
                    "name": f"kept {index}", "videoFilename": slow_clip, "videoUrl": f"/videos/{slow_clip}",
                    "timelineState": {"currentTime": index, "zoom": 1, "markers": [], "edits": SLOW_EDITS}})
                assert created.status_code == 201, created.text
                projects.append(created.json())
            jobs = [await http.post(f"{first.url}/api/edit/process", json={"projectId": projects[0]["id"]})]
            jobs += [await http.post(f"{first.url}/api/edit/trim", json={"filename": "clip.mp4", "startTime": 0.5,
                                                                         "endTime": 1.5}) for _ in range(2)]
            assert [job.status_code for job in jobs] == [202] * 3, [job.text for job in jobs]
            operation_ids = [job.json()["operationId"] for job in jobs]
            for _ in range(1500):  # until the render is under way (the trims queue behind it)
                states = await job_states(http, first.url, operation_ids)
                if states[0]["status"] == "running" and states[0]["progress"] > 0:
                    break
                await asyncio.sleep(0.02)
            assert [state["status"] for state in states] == ["running", "queued", "queued"], states

            await first.kill()
            partial = [path.name for path in media_dir.iterdir() if path.name.startswith(f".{operation_ids[0]}")]
            assert partial, "the killed attempt left its unfinished output"
            second = Serve(migrated_dsn, media_dir, tmp_path)
            await second.ready(http)
            for _ in range(1500):  # 30 s: only a job that is never picked up again waits it out
                states = await job_states(http, second.url, operation_ids)
                if all(state["status"] in ("done", "failed", "cancelled") for state in states):
                    break
                await asyncio.sleep(0.02)
            assert [state["status"] for state in states] == ["done"] * 3, states
            render, *trims = states
            assert render["attempts"] == 2, render  # the killed attempt counted; its lease was reaped
            assert render["result"]["filename"] == f"{operation_ids[0]}.r2.mp4"
            assert [trim["attempts"] for trim in trims] == [1, 1], trims

            listed = (await http.get(f"{second.url}/api/projects")).json()
            assert sorted(listed, key=lambda row: row["id"]) == projects
            outputs = {state["result"]["filename"] for state in states}
            assert media_files(media_dir) == {slow_clip, "clip.mp4", *outputs}
        finally:
            for server in (first, second):
                if server is not None:
                    await server.stop()
    assert second is not None and second.process.returncode == 0


async def test_children_of_a_sigkilled_server_hand_back_their_job_and_exit(
        migrated_dsn: str, media_dir: Path, slow_clip: str, tmp_path: Path) -> None:
    server = Serve(migrated_dsn, media_dir, tmp_path)
    kinds = {"job worker": "core.jobs.worker", "media pool": "multiprocessing.spawn",
             "resource tracker": "multiprocessing.resource_tracker"}
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            await server.ready(http)
            for _ in range(1500):  # the pool is warm by now; a moment's grace for a loaded machine
                children = server.group()
                if all(any(marker in command for command in children.values()) for marker in kinds.values()):
                    break
                await asyncio.sleep(0.02)
            missing = [kind for kind, marker in kinds.items()
                       if not any(marker in command for command in children.values())]
            assert not missing, (missing, children)
            accepted = await http.post(f"{server.url}/api/edit/process",
                                       json={"filename": slow_clip, "edits": LONGER_EDITS})
            assert accepted.status_code == 202, accepted.text
            operation_id = accepted.json()["operationId"]
            for _ in range(1500):
                [state] = await job_states(http, server.url, [operation_id])
                if state["status"] == "running" and state["progress"] > 0:
                    break
                await asyncio.sleep(0.02)
            assert state["status"] == "running", state

            server.process.kill()  # the server alone, as the OOM killer does
            await asyncio.to_thread(server.process.wait)
            deadline = asyncio.get_running_loop().time() + ORPHANS_EXIT_WITHIN
            while (left := server.group()) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            assert not left, f"outlived the server: {left}"

            connection = await asyncpg.connect(migrated_dsn)
            try:
                job = await connection.fetchrow(
                    "SELECT status, attempts, lease_owner, message FROM jobs WHERE operation_id = $1", operation_id)
            finally:
                await connection.close()
            # Handed back once, and not claimed again: queued, its attempt not counted, no owner.
            assert dict(job) == {"status": "queued", "attempts": 0, "lease_owner": None,
                                 "message": "Requeued (worker stopped)"}, dict(job)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)  # whatever outlived it, on failure
            if server.process.poll() is None:
                server.process.kill()
                await asyncio.to_thread(server.process.wait)
