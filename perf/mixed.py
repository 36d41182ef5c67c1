"""Mixed load: N WebSocket followers, CRUD load and media jobs, all at once.

    python -m perf mixed --followers 1000 --concurrency 16 --jobs 20 --duration 10 --plot mixed.png
    python -m perf mixed --url http://127.0.0.1:8080 ...       # any deployment (one node, a balancer)

Without ``--url`` it starts a server of its own (``nve serve`` with ``NVE_BENCH=1``,
``--workers`` media workers, the write rate limits lifted, a throwaway database), pinned
to ``--server-cpu`` with the clients on the other CPUs. Then:

1. a generated clip (``--clip-seconds``, 320x240) is uploaded with ``POST /api/upload``
   and 100 projects are seeded;
2. ``--followers`` WebSocket clients connect from ``--processes`` client processes (the
   ws-fanout clients: hand-parsed frames) and follow every operation (the default broadcast);
3. for ``--duration`` s, at once: the http-crud ``mix`` load (GET, list, PUT, POST in turn)
   on ``--concurrency`` connections from ``--crud-processes`` processes; ``--jobs`` copy-mode
   ``POST /api/edit/trim`` spread evenly over the run; and, when the server has the bench
   hook, a 5-message ``POST /api/_bench/broadcast`` every 0.5 s.

Reported: CRUD req/s and p50/p99; job end to end (the POST to the first follower's
``complete``), and queue wait and run time from the job rows; WebSocket delivery of the
jobs' final messages (arrival at each follower minus the job row's ``finishedAt``: the
server's clock, so only meaningful with the server on this machine's clock) and, with the
bench hook, of progress messages (arrival minus ``sentAt``); finals missing at followers;
errors; and the load of the busiest client CPU (its client processes together), flagged
above 90 % (the client saturated: the figures then include its backlog).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import uvloop

from perf.http_crud import run_scenario, seed
from perf.httpclient import Target
from perf.stats import CpuMeter, add_output_args, client_load, own_cpu, per_cpu, print_table, summarize, write_json
from perf.ws_bench import Sink, add_target_args, connect_all, open_target, start_clients

FINISHED = ("done", "failed", "cancelled")
BENCH_EVERY = 0.5
BENCH_COUNT = 5


def _follow(cpu: int | None, host: str, port: int, count: int, ready: multiprocessing.Queue,  # type: ignore[type-arg]
            go: multiprocessing.Event, stop: multiprocessing.Event,  # type: ignore[type-arg]
            out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Client process: ``count`` followers until ``stop``; sends back the bench latencies (epoch ms),
    the finals as (arrival epoch ms, operationId, type), closes seen, its CPU and its CPU share from ``go``."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def run() -> None:
        sink = Sink()
        clients = await connect_all(host, port, count, sink)
        ready.put(len(clients))
        while not go.is_set():
            await asyncio.sleep(0.01)
        meter = CpuMeter()
        while not stop.is_set():
            await asyncio.sleep(0.02)
        share = meter.share()
        finals = []
        for arrival, payload in sink.finals:
            message = json.loads(payload)
            finals.append((arrival, message["data"]["operationId"], message["type"]))
        out.put((sink.latencies.tobytes(), finals, sink.closed, own_cpu(), share))
        for client in clients:
            client.transport.abort()  # type: ignore[union-attr]

    uvloop.run(run())


def _call(url: str, method: str, path: str, body: bytes | None = None,
          content_type: str = "application/json") -> tuple[int, object]:
    request = urllib.request.Request(url + path, data=body, method=method, headers={"content-type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None


def open_media_target(stack: ExitStack, args: argparse.Namespace, name: str) -> tuple[str, list[int], Path]:
    """The URL to load, the client CPUs, and a clip of ``args.clip_seconds`` to upload (gone
    when ``stack`` closes). A server of its own gets ``args.workers`` media workers and rate
    limits out of the way: the load, not the limiter, is what is measured."""
    from tests.media.clips import make_clip

    clip = make_clip(Path(stack.enter_context(tempfile.TemporaryDirectory())) / f"{name}.mp4",
                     seconds=args.clip_seconds)
    url, client_cpus = open_target(stack, args, {"NVE_WORKERS": str(args.workers),
                                                 "NVE_RATE_LIMIT_WRITES": "100000000",
                                                 "NVE_RATE_LIMIT_UPLOADS": "100000"})
    return url, client_cpus, clip


def upload_clip(url: str, clip: Path) -> str:
    """``POST /api/upload`` of ``clip`` (multipart, field ``video``); the stored filename."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="{clip.name}"\r\n'
            f"Content-Type: video/mp4\r\n\r\n").encode() + clip.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, stored = _call(url, "POST", "/api/upload", body, f"multipart/form-data; boundary={boundary}")
    if status != 201:
        raise RuntimeError(f"POST /api/upload answered {status}")
    return stored["filename"]  # type: ignore[index]


def _epoch_ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


async def _jobs(url: str, filename: str, count: int, duration: float, seconds: float) -> dict[str, object]:
    """``count`` copy trims spread over ``duration`` s, then every one waited for; their rows and POST times."""
    body = json.dumps({"filename": filename, "startTime": seconds * 0.2, "endTime": seconds * 0.8,
                       "mode": "copy"}).encode()
    posted: dict[str, float] = {}
    refused = 0
    started = time.monotonic()
    for index in range(count):
        await asyncio.sleep(max(0.0, started + index * duration / count - time.monotonic()))
        at = time.time() * 1000
        status, answer = await asyncio.to_thread(_call, url, "POST", "/api/edit/trim", body)
        if status == 202:
            posted[answer["operationId"]] = at  # type: ignore[index]
        else:
            refused += 1
    rows: dict[str, dict] = {}
    deadline = time.monotonic() + max(30.0, duration * 3)
    while len(rows) < len(posted) and time.monotonic() < deadline:
        for operation_id in posted.keys() - rows.keys():
            status, job = await asyncio.to_thread(_call, url, "GET", f"/api/jobs/{operation_id}")
            if status == 200 and job["status"] in FINISHED:  # type: ignore[index]
                rows[operation_id] = job  # type: ignore[assignment]
        await asyncio.sleep(0.1)
    return {"posted": posted, "rows": rows, "refused": refused}


async def _bench_broadcasts(url: str, stop: asyncio.Event) -> tuple[bool, int]:
    """A few bench broadcasts every ``BENCH_EVERY`` s until ``stop``: (the hook exists, failures)."""
    failures = 0
    while not stop.is_set():
        body = json.dumps({"count": BENCH_COUNT, "operationId": f"bench-mixed-{uuid.uuid4().hex[:8]}"}).encode()
        status, _ = await asyncio.to_thread(_call, url, "POST", "/api/_bench/broadcast", body)
        if status == 404:
            return False, failures
        failures += status != 202
        try:
            await asyncio.wait_for(stop.wait(), BENCH_EVERY)
        except TimeoutError:
            pass
    return True, failures


def run_mixed(url: str, args: argparse.Namespace, client_cpus: list[int], clip: Path) -> tuple[dict, dict]:
    """The whole run against ``url``: (the JSON document, the raw samples for the plot)."""
    filename = upload_clip(url, clip)
    ids = seed(url, 100)
    target = Target.from_url(url)
    context = multiprocessing.get_context("spawn")
    ready, out = context.Queue(), context.Queue()
    go, stop_followers = context.Event(), context.Event()
    followers = start_clients(context, _follow, args.followers, args.processes, client_cpus,
                              lambda cpu, share: (cpu, target.host, target.port, share, ready, go,
                                                  stop_followers, out))
    connected = sum(ready.get(timeout=300) for _ in followers)

    async def drive() -> tuple:
        stop = asyncio.Event()
        go.set()
        bench = asyncio.create_task(_bench_broadcasts(url, stop))
        crud = asyncio.create_task(asyncio.to_thread(run_scenario, url, "mix", ids, args.concurrency,
                                                     args.duration, args.crud_processes))
        jobs = await _jobs(url, filename, args.jobs, args.duration, args.clip_seconds)
        crud_row, crud_raw = await crud
        stop.set()
        await asyncio.sleep(0.5)  # the last finals and bench messages in flight
        stop_followers.set()
        reports = [await asyncio.to_thread(out.get, True, 60) for _ in followers]
        return jobs, crud_row, crud_raw, await bench, reports

    jobs, crud_row, crud_raw, (hooked, bench_failures), reports = uvloop.run(drive())
    for follower in followers:
        follower.join(30)

    posted, job_rows = jobs["posted"], jobs["rows"]
    bench_ms: list[float] = []
    first_final: dict[str, float] = {}
    delivery: list[float] = []
    finals, closed = 0, 0
    for latencies, arrivals, lost, _, _ in reports:
        bench_ms += memoryview(latencies).cast("d").tolist()
        closed += lost
        for arrival, operation_id, _ in arrivals:
            if operation_id not in posted:
                continue  # another client's job on a shared deployment
            finals += 1
            first_final[operation_id] = min(arrival, first_final.get(operation_id, arrival))
            row = job_rows.get(operation_id)
            if row is not None and row.get("finishedAt"):
                delivery.append((arrival - _epoch_ms(row["finishedAt"])) / 1000)
    end_to_end = [(first_final[o] - at) / 1000 for o, at in posted.items() if o in first_final]
    waits = [(_epoch_ms(r["startedAt"]) - _epoch_ms(r["createdAt"])) / 1000 for r in job_rows.values()
             if r.get("startedAt")]
    runs = [(_epoch_ms(r["finishedAt"]) - _epoch_ms(r["startedAt"])) / 1000 for r in job_rows.values()
            if r.get("startedAt") and r.get("finishedAt")]
    failed_jobs = sum(1 for r in job_rows.values() if r["status"] != "done") + len(posted) - len(job_rows)
    expected_finals = connected * len(posted)
    duration = args.duration
    rows = [
        {"metric": "crud (get, list, put, post)", "count": crud_row["requests"],
         "per_s": crud_row["req_per_s"], **summarize(crud_raw.latencies), "errors": crud_row["errors"]},
        {"metric": "job end to end (POST -> complete)", "count": len(end_to_end), "per_s": len(end_to_end) / duration,
         **summarize(end_to_end), "errors": failed_jobs + jobs["refused"]},
        {"metric": "job queue wait (rows)", "count": len(waits), **summarize(waits)},
        {"metric": "job run (rows)", "count": len(runs), **summarize(runs)},
        {"metric": "ws job final delivery", "count": finals, "per_s": finals / duration, **summarize(delivery),
         "errors": expected_finals - finals},
    ]
    if hooked:
        rows.append({"metric": "ws progress delivery (sentAt)", "count": len(bench_ms),
                     "per_s": len(bench_ms) / duration, **summarize([v / 1000 for v in bench_ms]),
                     "errors": bench_failures})
    # The CRUD processes (run_scenario's, unpinned) run on this process's CPUs; its figure is its busiest one's.
    load = per_cpu([(cpu, share) for *_, cpu, share in reports]
                   + [(own_cpu(), crud_row["client_cpu"] / 100)])  # type: ignore[operator]
    errors = sum(int(row.get("errors", 0)) for row in rows) + closed
    document = {
        "url": url, "followers": connected, "duration_s": duration, "jobs": len(posted),
        "crud_req_per_s": crud_row["req_per_s"], "crud_p50_ms": rows[0]["p50_ms"], "crud_p99_ms": rows[0]["p99_ms"],
        "job_e2e_p50_ms": rows[1]["p50_ms"], "job_e2e_p99_ms": rows[1]["p99_ms"],
        "ws_final_p50_ms": rows[4]["p50_ms"], "ws_final_p99_ms": rows[4]["p99_ms"],
        "ws_progress_p50_ms": rows[5]["p50_ms"] if hooked else None,
        "ws_progress_p99_ms": rows[5]["p99_ms"] if hooked else None,
        "finals_delivered": finals, "finals_expected": expected_finals, "closed_by_server": closed,
        "errors": errors, **client_load(load), "rows": rows,
    }
    offset = time.time() - time.perf_counter()  # the followers stamp epoch time, the CRUD client perf_counter
    start = min(crud_raw.finished, default=0.0) + offset
    samples = {
        "cdfs": {"crud": crud_raw.latencies, "job end to end": end_to_end, "ws job final delivery": delivery,
                 **({"ws progress (sentAt)": [v / 1000 for v in bench_ms]} if hooked else {})},
        "events": {"crud responses": [t + offset - start for t in crud_raw.finished],
                   "jobs complete": [at / 1000 - start for at in first_final.values()]},
    }
    return document, samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf mixed", description=__doc__.split("\n")[0])
    parser.add_argument("--followers", type=int, default=1000, help="WebSocket clients following every job")
    parser.add_argument("--processes", type=int, default=2, help="client processes holding the followers")
    parser.add_argument("--concurrency", type=int, default=16, help="CRUD keep-alive connections")
    parser.add_argument("--crud-processes", type=int, default=1, help="client processes of the CRUD load")
    parser.add_argument("--jobs", type=int, default=20, help="copy trims spread over the run")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--clip-seconds", type=float, default=4.0, help="length of the uploaded clip")
    parser.add_argument("--workers", type=int, default=1, help="media workers of a server of its own")
    add_target_args(parser)
    add_output_args(parser)
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        url, client_cpus, clip = open_media_target(stack, args, "mixed")
        document, samples = run_mixed(url, args, client_cpus, clip)
    print(f"mixed against {url}: {document['followers']} followers, CRUD on {args.concurrency} connections, "
          f"{document['jobs']} copy trims, {args.duration:g} s; finals {document['finals_delivered']}/"
          f"{document['finals_expected']}, errors {document['errors']}, client CPU {document['client_cpu']} %"
          + (" (SATURATED: figures are upper bounds)" if document["client_saturated"] else ""))
    print_table(document["rows"], ["metric", "count", "per_s", "p50_ms", "p99_ms", "max_ms", "errors"])
    write_json(args.json, document)
    if args.plot:
        from perf.plot import plot

        plot(args.plot, f"mixed: {document['followers']} followers + CRUD + jobs", samples["cdfs"],
             samples["events"])


if __name__ == "__main__":
    main()
