"""Durable jobs under a burst: queue wait and run time of M concurrent trims on N workers.

    python -m perf.jobs_bench --jobs 24 --workers 1,2 --clip-seconds 10

For each worker count: a fresh database, N supervised worker processes (warmed up with
one job each, so ``import av`` is not measured), then M copy-mode trims enqueued at once.
Reported per job, from the job rows (PostgreSQL's clock): queue wait (created ->
started), run (started -> finished) and total; plus the pickup latency of a single job
enqueued while every worker idles (NOTIFY -> claim), and the burst's wall time. This
process enqueues and polls the rows (the client side): its CPU share over the burst is
reported, flagged above 90 %.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import uvloop

from core.access.owners import LOCAL
from core.db.migrations import migrate
from core.db.pool import Database
from core.jobs import operations
from core.jobs.queue import Job, JobQueue
from core.jobs.settings import JobSettings
from core.jobs.supervisor import Supervisor
from perf.stats import CpuMeter, add_output_args, client_load, print_table, summarize, write_json
from tests.media.clips import make_clip


async def _wait_all(queue: JobQueue, ids: list[str]) -> list[Job]:
    while True:
        jobs = [await queue.get(LOCAL, operation_id) for operation_id in ids]
        if all(job is not None and job.finished for job in jobs):
            return jobs  # type: ignore[return-value]
        await asyncio.sleep(0.01)


async def _trims(queue: JobQueue, media_dir: Path, count: int, seconds: float) -> list[str]:
    params = operations.trim_params({"filename": "clip.mp4", "startTime": seconds * 0.2,
                                     "endTime": seconds * 0.8}, media_dir)
    ids = [operations.new_operation_id("trim") for _ in range(count)]
    await asyncio.gather(*(queue.enqueue(LOCAL, operation_id, "trim", params) for operation_id in ids))
    return ids


def _spans(jobs: list[Job]) -> dict[str, list[float]]:
    return {"wait": [(j.started_at - j.created_at).total_seconds() for j in jobs],
            "run": [(j.finished_at - j.started_at).total_seconds() for j in jobs],
            "total": [(j.finished_at - j.created_at).total_seconds() for j in jobs]}


async def _scenario(admin_dsn: str, media_dir: Path, workers: int, count: int,
                    seconds: float) -> tuple[list[dict], dict[str, list[float]]]:
    """The rows of one worker count, and its pickups and burst spans in seconds (for the plot)."""
    name = f"nve_jobs_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = admin_dsn.rpartition("/")[0] + f"/{name}"
    db = Database(dsn, max_size=10)
    supervisor = Supervisor(workers, dsn, media_dir, JobSettings())
    try:
        await migrate(dsn)
        await db.open()
        queue = JobQueue(db.acquire)
        await supervisor.start()
        warm = await _wait_all(queue, await _trims(queue, media_dir, workers, seconds))
        assert all(job.status == "done" for job in warm), [job.error for job in warm]
        await asyncio.sleep(0.5)  # every worker idle, waiting on LISTEN
        pickups = []
        for _ in range(5):
            [single] = await _wait_all(queue, await _trims(queue, media_dir, 1, seconds))
            pickups.append((single.started_at - single.created_at).total_seconds())
            await asyncio.sleep(0.2)
        started, meter = time.perf_counter(), CpuMeter()
        burst = await _wait_all(queue, await _trims(queue, media_dir, count, seconds))
        wall, cpu = time.perf_counter() - started, meter.share()
    finally:
        await supervisor.stop()
        await db.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    failed = sum(job.status != "done" for job in burst)
    rows = [{"workers": workers, "jobs": 1, "metric": "pickup (idle)", **summarize(pickups)}]
    spans = _spans(burst)
    for metric, values in spans.items():
        rows.append({"workers": workers, "jobs": count, "metric": metric, **summarize(values)})
    rows.append({"workers": workers, "jobs": count, "metric": "burst wall", "p50_ms": wall * 1000,
                 "jobs_per_s": count / wall, "errors": failed, **client_load([cpu])})
    return rows, {f"{metric}, {workers} worker(s)": values
                  for metric, values in {"pickup (idle)": pickups, **spans}.items()}


async def _main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        media_dir = Path(tmp)
        make_clip(media_dir / "clip.mp4", seconds=args.clip_seconds, width=640, height=360)
        rows, raw = [], {}
        for workers in args.workers:
            scenario_rows, samples = await _scenario(args.dsn, media_dir, workers, args.jobs, args.clip_seconds)
            rows.extend(scenario_rows)
            raw.update(samples)
    print(f"{args.jobs} copy trims of the middle 60 % of a {args.clip_seconds:g} s 640x360 clip")
    print_table(rows, ["workers", "jobs", "metric", "p50_ms", "p99_ms", "max_ms", "jobs_per_s", "errors",
                       "client_cpu", "client_saturated"])
    write_json(args.json, rows)
    if args.plot:
        from perf.plot import plot

        plot(args.plot, f"jobs: {args.jobs} copy trims", raw)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf.jobs_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="an admin DSN; a scratch database is created and dropped")
    parser.add_argument("--jobs", type=int, default=24, help="trims in the burst")
    parser.add_argument("--workers", type=lambda text: [int(n) for n in text.split(",")], default=[1, 2])
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    add_output_args(parser)
    uvloop.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
