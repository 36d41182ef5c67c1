"""Scale-out, end to end: three ``nve serve`` nodes behind nginx, one database, one Redis, one MEDIA_DIR.

Followers on every node get the whole progress of jobs that other nodes' workers ran
(PostgreSQL NOTIFY reaches every node's hub). Then the node whose worker holds a job is
killed with its whole process group: the clients that nginx had placed on it reconnect
through the balancer, resubscribe and still get the final ``complete``, and a surviving
worker finishes the job once the dead worker's lease (1 s here) expires.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from perf.cluster import Cluster, NginxMissing, Node
from server.ws.client import WsClient, WsMessage
from tests.media.clips import make_clip

NODE_ENV = {"NVE_JOB_LEASE": "1", "NVE_JOB_POLL": "0.2", "NVE_JOB_PROGRESS_INTERVAL": "0.05",
            "NVE_WORKER_NICE": "0", "NVE_CODEC_THREADS": "1"}
SLOW_EDITS = [{"type": "speed", "factor": 0.25}]
"""A render of the 4 s clip with these edits runs for seconds: time to kill a node mid-job."""
TIMEOUT = 40.0


@pytest.fixture
async def cluster(migrated_dsn: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    running = Cluster(migrated_dsn, redis_url, tmp_path / "media", tmp_path / "cluster", nodes=3, workers=1,
                      env=NODE_ENV)
    try:
        await asyncio.to_thread(running.start)
    except NginxMissing as error:
        pytest.fail(f"the cluster test needs nginx: {error}")
    try:
        yield running
    finally:
        await asyncio.to_thread(running.stop)


class Follower:
    """A WebSocket client and every message it received, split by connection (each opens with a welcome ping)."""

    def __init__(self, name: str, url: str, reconnect: bool) -> None:
        self.name = name
        self.client = WsClient(url, reconnect=reconnect, base_delay=0.05, max_delay=0.5)
        self.connections: list[list[WsMessage]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.connect()
        self._task = asyncio.create_task(self._collect())
        await self.wait_for(lambda: bool(self.connections))

    async def _collect(self) -> None:
        async for message in self.client:
            if message.type == "ping" and isinstance(message.data, dict) and "clientId" in message.data:
                self.connections.append([])
            elif self.connections:
                self.connections[-1].append(message)

    def of(self, operation_id: str) -> list[list[WsMessage]]:
        """This operation's progress/complete/error messages, per connection."""
        return [[m for m in messages if m.type in ("progress", "complete", "error")
                 and m.data.get("operationId") == operation_id] for messages in self.connections]

    def completes(self, operation_id: str) -> int:
        return sum(1 for messages in self.of(operation_id) for m in messages if m.type == "complete")

    async def wait_for(self, predicate, timeout: float = TIMEOUT) -> None:  # type: ignore[no-untyped-def]
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{self.name}: condition not met; received {self.connections}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.client.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def assert_followed(follower: Follower, operation_id: str) -> None:
    """Per connection: progress monotonic and at most one complete, last; over all, a complete arrived."""
    for messages in follower.of(operation_id):
        progress = [m.data["progress"] for m in messages if m.type == "progress"]
        assert progress == sorted(progress), (follower.name, operation_id, progress)
        assert progress.count(100) <= 1, (follower.name, operation_id, progress)
        kinds = [m.type for m in messages]
        assert "error" not in kinds, (follower.name, operation_id, messages)
        assert kinds.count("complete") <= 1 and ("complete" not in kinds or kinds[-1] == "complete"), \
            (follower.name, operation_id, kinds)
    assert follower.completes(operation_id) >= 1, (follower.name, operation_id, follower.connections)


def assert_full_progress(follower: Follower, operation_id: str) -> None:
    """One connection saw the whole job: progress up to 100 once, then exactly one complete."""
    assert_followed(follower, operation_id)
    (messages,) = follower.of(operation_id)
    progress = [m.data["progress"] for m in messages if m.type == "progress"]
    assert progress and progress[-1] == 100 and progress.count(100) == 1, (follower.name, operation_id, progress)
    assert follower.completes(operation_id) == 1


async def lease_owners(dsn: str, cluster: Cluster, operation_ids: list[str],
                       owners: dict[str, set[int]], stop: asyncio.Event) -> None:
    """Record which node's worker held each job's lease (``host:pid:tag``), until ``stop``."""
    db = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            for row in await db.fetch("SELECT operation_id, lease_owner FROM jobs WHERE operation_id = ANY($1) "
                                      "AND lease_owner IS NOT NULL", operation_ids):
                node = cluster.node_of(int(row["lease_owner"].split(":")[1]))
                if node is not None:
                    owners.setdefault(row["operation_id"], set()).add(node.index)
            await asyncio.sleep(0.03)
    finally:
        await db.close()


async def metric(node: Node, prefix: str) -> float:
    """The sum of the node's /metrics samples whose line starts with ``prefix`` (name and labels)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{node.url}/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


SESSION_READS = 'nve_http_requests_total{method="GET",route="/api/session",status="200"}'


async def start_jobs(http: httpx.AsyncClient, filename: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        response = await http.post("/api/edit/process", json={"filename": filename, "edits": SLOW_EDITS})
        assert response.status_code == 202, response.text
        ids.append(response.json()["operationId"])
    return ids


async def test_three_nodes_behind_nginx_survive_the_loss_of_one(cluster: Cluster, migrated_dsn: str,
                                                                tmp_path: Path) -> None:
    clip = await asyncio.to_thread(make_clip, tmp_path / "slow.mp4", seconds=4.0)
    db = await asyncpg.connect(migrated_dsn)
    followers: list[Follower] = []
    async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as http:
        try:
            # Upload through the balancer, with a session (the cookie nginx hashes on).
            assert (await http.get("/api/session")).status_code == 200
            assert "nve_session" in http.cookies
            before = [await metric(node, SESSION_READS) for node in cluster.members]
            for _ in range(10):  # sticky: one session, one node
                assert (await http.get("/api/session")).status_code == 200
            after = [await metric(node, SESSION_READS) for node in cluster.members]
            assert sorted(a - b for a, b in zip(after, before)) == [0, 0, 10], (before, after)
            upload = await http.post("/api/upload", files={"video": ("slow.mp4", clip.read_bytes(), "video/mp4")})
            assert upload.status_code == 201, upload.text
            filename = upload.json()["filename"]
            assert (cluster.media_dir / filename).is_file()

            direct = [Follower(f"node-{node.index}", f"ws://127.0.0.1:{node.port}/ws", reconnect=False)
                      for node in cluster.members]
            balanced = [Follower(f"nginx-{i}", f"ws://127.0.0.1:{cluster.port}/ws", reconnect=True)
                        for i in range(2)]
            followers = direct + balanced
            for follower in followers:
                await follower.start()
            for node in cluster.members:  # every node's hub hears the job table's NOTIFYs
                for _ in range(200):
                    if (await http.get(f"{node.url}/readyz")).json()["jobs"]["events"] == "listening":
                        break
                    await asyncio.sleep(0.05)

            # Phase 1: three jobs, one per worker; every follower sees every job whole.
            first = await start_jobs(http, filename, 3)
            owners: dict[str, set[int]] = {}
            stop = asyncio.Event()
            watcher = asyncio.create_task(lease_owners(migrated_dsn, cluster, first, owners, stop))
            for follower in followers:
                await follower.wait_for(lambda f=follower: all(f.completes(op) for op in first))
            stop.set()
            await watcher
            await asyncio.sleep(0.3)  # a duplicate complete would arrive now
            ran_on = {op: nodes for op, nodes in owners.items()}
            assert set(ran_on) == set(first) and len(set().union(*ran_on.values())) >= 2, ran_on
            for follower in followers:
                for op in first:
                    assert_full_progress(follower, op)
            for follower in direct:  # each node's followers saw jobs other nodes' workers ran
                index = int(follower.name.split("-")[1])
                assert any(index not in nodes for nodes in ran_on.values()), (follower.name, ran_on)

            # Phase 2: kill the node nginx put the balanced followers on, while its worker renders.
            counts = [await metric(node, "nve_ws_clients ") for node in cluster.members]
            victim = cluster.members[counts.index(max(counts))]
            assert counts[victim.index] == 1 + len(balanced), counts
            second = await start_jobs(http, filename, 3)
            for follower in balanced:
                await follower.client.subscribe(second)
            owners = {}
            stop = asyncio.Event()
            watcher = asyncio.create_task(lease_owners(migrated_dsn, cluster, second, owners, stop))
            doomed: str | None = None
            for _ in range(int(TIMEOUT / 0.03)):
                doomed = next((op for op, nodes in owners.items() if victim.index in nodes), None)
                if doomed is not None and await db.fetchval(
                        "SELECT progress FROM jobs WHERE operation_id = $1", doomed):
                    break
                await asyncio.sleep(0.03)
            assert doomed is not None, f"no job ran on node {victim.index}: {owners}"
            for follower in balanced:  # they follow it mid-job
                await follower.wait_for(lambda f=follower: any(m.type == "progress" for c in f.of(doomed) for m in c))
            await asyncio.to_thread(cluster.kill, victim)
            survivors = [f for f in direct if f.name != f"node-{victim.index}"]
            for follower in balanced + survivors:
                await follower.wait_for(lambda f=follower: all(f.completes(op) for op in second))
            stop.set()
            await watcher
            await asyncio.sleep(0.3)

            for follower in balanced:
                assert follower.client.reconnects >= 1 and len(follower.connections) >= 2, follower.name
                assert follower.completes(doomed) == 1, (follower.name, follower.of(doomed))
                for op in second:
                    assert_followed(follower, op)
            for follower in survivors:
                for op in second:
                    assert_full_progress(follower, op)
            job = await db.fetchrow("SELECT status, attempts FROM jobs WHERE operation_id = $1", doomed)
            assert job["status"] == "done" and job["attempts"] == 2, dict(job)
            assert owners[doomed] - {victim.index}, owners  # a surviving worker finished it
        finally:
            for follower in followers:
                await follower.close()
            await db.close()
