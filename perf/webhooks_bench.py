"""Webhooks under a burst: N jobs finishing at once, their job.completed events posted to a local receiver.

    python -m perf webhooks --jobs 100 --endpoints 1,4 --rounds 3

For each endpoint count: a fresh database, ``nve serve`` as a process of its own (no job
workers, private addresses allowed: the receiver is this process, on 127.0.0.1), E
endpoints registered through the API, each subscribed to ``job.completed``. A round
enqueues N jobs and claims them through core.jobs.queue, as a worker does, then
completes all N in one transaction (the queue bound to that transaction's connection), so
N rows finish at the same instant and the outbox trigger writes N events and N x E
deliveries at that commit. Nothing is rendered: only the webhook path is measured.

Reported per endpoint count over all rounds: the added latency from the job's completion
to the receiver's arrival, from the row's ``finished_at`` (PostgreSQL's ``now()`` of the
completing transaction, so it includes the transaction itself) and from the commit's
return, p50 / p99 / max; and deliveries per second (N x E over commit -> last arrival).
One endpoint has at most 4 deliveries in flight (``per_endpoint``): the 1-endpoint rate is
that cap's, the E-endpoint rate the sender's. This process enqueues, completes and receives
(h11, tests/webhooks/conftest.py's receiver): its CPU share of the rounds is reported,
flagged above 90 %.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import uvloop

from core.access.owners import LOCAL
from core.db.migrations import migrate
from core.db.pool import Database, DbConnection
from core.jobs.queue import JobQueue
from perf.stats import CpuMeter, add_output_args, client_load, print_table, summarize, write_json
from tests.conftest import free_port
from tests.webhooks.receiver import Receiver

ROOT = Path(__file__).resolve().parents[1]
RESULT = {"filename": "bench.mp4", "url": "/videos/bench.mp4", "duration": 1.0, "cut": {"start": 0, "end": 1}}


@contextlib.contextmanager
def _serve(dsn: str, workdir: Path) -> Iterator[str]:
    """``nve serve`` on a free port (no job workers, private webhook targets allowed); its base URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "MEDIA_DIR": str(workdir / "media"), "NVE_WORKERS": "0",
           "REDIS_URL": "redis://127.0.0.1:1/0", "NVE_WEBHOOK_ALLOW_PRIVATE": "1"}
    log = (workdir / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "--log-level", "WARNING", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--data-dir", str(workdir / "data"), "--no-access-log"],
        env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)
        log.close()


async def _ready(http: httpx.AsyncClient) -> None:
    for _ in range(1200):
        with contextlib.suppress(httpx.TransportError):
            if (await http.get("/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError("nve serve did not become ready in 60 s")


@contextlib.asynccontextmanager
async def _database(admin_dsn: str) -> AsyncIterator[str]:
    name = f"nve_webhooks_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = admin_dsn.rpartition("/")[0] + f"/{name}"
        await migrate(dsn)
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _finish_at_once(db: Database, count: int) -> tuple[dict[str, float], float]:
    """Enqueue and claim ``count`` jobs, then complete them in one transaction: each job's
    finished_at (unix seconds) and the wall clock when the commit returned."""
    queue = JobQueue(db.acquire)
    ids = [f"trim-bench-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    for operation_id in ids:
        await queue.enqueue(LOCAL, operation_id, "trim", {"filename": "bench.mp4", "start": 0, "end": 1})
        claimed = await queue.claim("bench", 300)
        assert claimed is not None and claimed.operation_id == operation_id
    async with db.acquire() as connection:
        async with connection.transaction():
            @contextlib.asynccontextmanager
            async def this_transaction() -> AsyncIterator[DbConnection]:
                yield connection

            in_transaction = JobQueue(this_transaction)
            for operation_id in ids:
                assert await in_transaction.complete(operation_id, "bench", RESULT)
        committed = time.time()
    finished = {}
    for operation_id in ids:
        job = await queue.get(LOCAL, operation_id)
        assert job is not None and job.finished_at is not None
        finished[operation_id] = job.finished_at.timestamp()
    return finished, committed


Raw = tuple[list[float], list[float]]
"""One scenario's latencies (commit -> arrival, s) and arrival times (s after each round's commit), for the plot."""


async def _scenario(admin_dsn: str, endpoints: int, count: int, rounds: int) -> tuple[list[dict[str, object]], Raw]:
    receiver = Receiver()
    await receiver.start()
    with tempfile.TemporaryDirectory() as tmp:
        async with _database(admin_dsn) as dsn:
            db = Database(dsn, max_size=4)
            await db.open()
            try:
                with _serve(dsn, Path(tmp)) as url:
                    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                        await _ready(http)
                        for index in range(endpoints):
                            response = await http.post("/api/webhooks", json={
                                "url": receiver.url(f"/e{index}"), "events": ["job.completed"]})
                            assert response.status_code == 201, response.text
                    return await _rounds(db, receiver, endpoints, count, rounds)
            finally:
                await db.close()
                await receiver.close()


async def _rounds(db: Database, receiver: Receiver, endpoints: int, count: int,
                  rounds: int) -> tuple[list[dict[str, object]], Raw]:
    from_finished: list[float] = []
    from_commit: list[float] = []
    rates: list[float] = []
    cpu = []
    for round_index in range(rounds + 1):  # round 0 warms up: connections, plans, the sender's first claim
        receiver.received.clear()
        meter = CpuMeter()
        finished, committed = await _finish_at_once(db, count if round_index else 1)
        expected = len(finished) * endpoints
        await receiver.wait_until(lambda wanted=expected: len(receiver.received) >= wanted, 120, "for the burst")
        if not round_index:
            continue
        cpu.append(meter.share())
        arrivals = receiver.received
        for request in arrivals:
            from_finished.append(request.at - finished[request.json()["data"]["operationId"]])
            from_commit.append(request.at - committed)
        rates.append(expected / (max(request.at for request in arrivals) - committed))
        assert len({(r.path, r.id) for r in arrivals}) == expected, "a duplicate delivery without a crash"
    row = {"endpoints": endpoints, "jobs": count, "deliveries": count * endpoints * rounds,
           "per_s": sorted(rates)[len(rates) // 2], **client_load(cpu)}
    return ([{**row, "metric": "finished_at -> arrival", **summarize(from_finished)},
             {**row, "metric": "commit -> arrival", **summarize(from_commit)}], (from_commit, sorted(from_commit)))


async def _main(args: argparse.Namespace) -> None:
    rows = []
    raw: dict[str, Raw] = {}
    for endpoints in args.endpoints:
        scenario_rows, raw[f"{endpoints} endpoint(s)"] = await _scenario(args.dsn, endpoints, args.jobs, args.rounds)
        rows.extend(scenario_rows)
    print(f"{args.jobs} jobs completed in one transaction, job.completed to E endpoints on a local receiver; "
          f"{args.rounds} rounds (per_s: the median round's deliveries per second)")
    print_table(rows, ["endpoints", "jobs", "deliveries", "metric", "p50_ms", "p99_ms", "max_ms", "per_s",
                       "client_cpu", "client_saturated"])
    write_json(args.json, rows)
    if args.plot:
        from perf.plot import plot

        plot(args.plot, f"webhooks: {args.jobs} jobs finishing at once, commit -> receiver",
             {label: latencies for label, (latencies, _) in raw.items()},
             {label: arrivals for label, (_, arrivals) in raw.items()})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("NVE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="an admin DSN; a scratch database is created and dropped")
    parser.add_argument("--jobs", type=int, default=100, help="jobs finishing in the one transaction")
    parser.add_argument("--endpoints", type=lambda text: [int(n) for n in text.split(",")], default=[1, 4],
                        help="endpoint counts, each a scenario of its own (comma-separated)")
    parser.add_argument("--rounds", type=int, default=3)
    add_output_args(parser)
    uvloop.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
