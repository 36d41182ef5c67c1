"""Soak: WebSocket followers, steady CRUD and a steady stream of media jobs for minutes; samples as it goes.

    python -m perf soak                                   # 10 minutes, 1 000 clients, a server of its own
    python -m perf soak --duration 60 --clients 200 --sample-every 5 --json soak.json --plot soak.png
    python -m perf soak --url http://127.0.0.1:3001 ...   # a running deployment

Without ``--url`` it starts a server of its own (``nve serve``, ``--workers`` media workers,
the write rate limits lifted, a throwaway database), pinned to ``--server-cpu`` with the
clients on the other CPUs, as ``mixed`` does. A generated clip is uploaded and 100
projects seeded; ``--clients`` WebSocket clients connect from ``--processes`` processes
(the ws-fanout clients) and follow every operation (the default broadcast). Then, for
``--duration`` s:

- CRUD at ``--crud-rate`` requests/s on ``--concurrency`` keep-alive connections, each
  cycling GET by id, GET of 100 rows, PUT, POST and a DELETE of the row it just created
  (so the table stays the same size);
- ``--job-rate`` media jobs/s, in turn three copy-mode trims, a split and a process
  (trim, scale, fade) of the clip; one more client, the package's own
  :class:`~server.ws.client.WsClient`, subscribes to each job and times it to its final
  message;
- every ``--sample-every`` s a sample: the server's RSS (its process and all descendants,
  the media workers, from ``/proc``; the server process alone too), its open fds and TCP
  connections to PostgreSQL, WebSocket clients connected (as the clients and as the
  server's ``/metrics`` count them), CRUD requests done and failed, jobs posted, done and
  failed, and final messages delivered against expected.

Then the posted jobs are waited for (``--drain`` s at most), one last sample is taken, and
the verdict printed; the exit status is 1 if it fails. It passes when:

- memory is flat: the median RSS of the last quarter of the run minus that of the second
  quarter (the first is warm-up) stays within ``--max-growth-mib`` or ``--max-growth-pct``
  of the baseline, whichever is larger, for the whole tree and for the server process
  (the least-squares slope over the second half is printed too); likewise open fds within
  ``--max-fd-growth``. A run with fewer than two samples in either quarter does not judge
  memory (it says so);
- no errors: every CRUD response had its expected status (no timeout, no dropped
  connection), every job was accepted, no WebSocket client lost its connection or was
  closed, the tracker never reconnected nor got a final twice, and the server answered no 5xx;
- every job ended ``done``;
- every final message reached every follower exactly once: per job, as many as followers,
  and per follower, one per job its process saw.

Memory can only be read from ``/proc`` for a server on this machine (found by the port it
listens on); against a remote ``--url`` memory, fds and PostgreSQL connections are not
measured. The finals check assumes no one else runs jobs on the deployment meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import statistics
import time
import urllib.error
import urllib.request
from array import array
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvloop

from core.jobs.messages import FINAL_KINDS
from perf.http_crud import EXPECT, request_factory, seed
from perf.httpclient import Target, build_request, open_connection
from perf.mixed import open_media_target, upload_clip
from perf.proctree import TreeSample, listening_pid, sample_tree
from perf.servers import PG_ADMIN
from perf.stats import (
    CpuMeter,
    ProcessCpu,
    add_output_args,
    client_load,
    own_cpu,
    per_cpu,
    print_table,
    shares,
    summarize,
    write_json,
)
from perf.ws_bench import Sink, add_target_args, connect_all, start_clients
from server.ws.client import WsClient

CRUD_KINDS = ("get", "list", "put", "post", "delete")
EXPECTED = {**EXPECT, "delete": 204}
JOB_CYCLE = ("trim", "trim", "trim", "split", "process")
REPORT_EVERY = 1.0
"""Seconds between the client processes' reports to the driver (a sample reads the latest)."""
REQUEST_TIMEOUT = 30.0
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
SAMPLE_COLUMNS = ["t_s", "rss_mib", "main_mib", "procs", "fds", "pg", "srv_cpu", "ws", "ws_srv", "crud_done",
                  "crud_err", "crud_per_s", "crud_p99_ms", "jobs", "done", "failed", "finals", "expected"]


# -- the client processes ----------------------------------------------------------------------


def _follow(cpu: int | None, host: str, port: int, count: int, out: multiprocessing.Queue,  # type: ignore[type-arg]
            stop: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    """Client process: ``count`` followers, each with its own sink so that each one's finals are
    counted. Reports ("ws", pid, connected, finals, closes) every ``REPORT_EVERY`` s until ``stop``,
    then ("ws-end", pid, finals per operation, followers whose count differs from the number of
    operations this process saw, its CPU, its CPU share)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def run() -> None:
        sinks = [Sink() for _ in range(count)]
        clients = []
        for first in range(0, count, 250):  # connect_all waits for a batch's welcomes at once
            batches = await asyncio.gather(*(connect_all(host, port, 1, sink) for sink in sinks[first:first + 250]))
            clients += [client for batch in batches for client in batch]
        per_operation: Counter[str] = Counter()
        per_client = [0] * count
        meter = CpuMeter()

        def drain() -> None:
            for index, sink in enumerate(sinks):
                for _, payload in sink.finals:
                    per_operation[json.loads(payload)["data"]["operationId"]] += 1
                per_client[index] += len(sink.finals)
                sink.finals.clear()

        while not stop.is_set():
            drain()
            connected = sum(1 for client in clients if not client.transport.is_closing())  # type: ignore[union-attr]
            out.put(("ws", os.getpid(), connected, sum(per_client), sum(sink.closed for sink in sinks)))
            await asyncio.sleep(REPORT_EVERY)
        drain()
        off = sum(1 for finals in per_client if finals != len(per_operation))
        out.put(("ws-end", os.getpid(), dict(per_operation), off, own_cpu(), meter.share()))
        for client in clients:
            client.transport.abort()  # type: ignore[union-attr]

    uvloop.run(run())


@dataclass
class _Crud:
    """The CRUD counters of one client process since its last report."""

    done: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    """By kind and cause: ``"put 500"``, ``"get timeout"``, ``"list closed"``, ``"post connect"``."""
    latencies: dict[str, array] = field(default_factory=lambda: {kind: array("d") for kind in CRUD_KINDS})
    finished: array = field(default_factory=lambda: array("d"))
    """Epoch seconds of each response (throughput over time)."""


def _crud(url: str, ids: list[int], connections: int, rate: float, out: multiprocessing.Queue,  # type: ignore[type-arg]
          stop: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    """Client process: ``connections`` keep-alive connections cycling through ``CRUD_KINDS`` at
    ``rate`` requests/s in all (0: back to back) until ``stop``. Reports ("crud", pid, counters
    since the last report) every ``REPORT_EVERY`` s, then ("crud-end", pid, its CPU, its CPU share)."""
    target = Target.from_url(url)
    host = f"{target.host}:{target.port}"
    factories = {kind: request_factory(kind, host, ids) for kind in ("get", "list", "put", "post")}
    interval = connections / rate if rate > 0 else 0.0

    async def run() -> None:
        counters = _Crud()
        running = True
        meter = CpuMeter()

        async def reconnect(kind: str) -> Any:
            """A new connection; while the server refuses, each attempt is one more error of ``kind``."""
            while True:
                try:
                    return await open_connection(target)
                except OSError:
                    counters.errors[f"{kind} connect"] += 1
                    await asyncio.sleep(1)

        async def connection_loop(index: int) -> None:
            connection = await reconnect("get")
            created: int | None = None  # the row the last POST made, which the next DELETE removes
            next_at = time.monotonic() + index * interval / max(1, connections)
            n = 0
            while running:
                kind = CRUD_KINDS[n % len(CRUD_KINDS)]
                n += 1
                if kind == "delete":
                    if created is None:
                        continue  # that POST failed (and was counted)
                    data = build_request("DELETE", f"/api/projects/{created}", host)
                    created = None
                else:
                    data = factories[kind](index, n)
                if interval:
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif delay < -1:
                        next_at = time.monotonic()  # fell behind: carry on from now, without a burst
                started = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(connection.request(data), REQUEST_TIMEOUT)
                except (ConnectionError, TimeoutError) as error:
                    counters.errors[f"{kind} {'timeout' if isinstance(error, TimeoutError) else 'closed'}"] += 1
                    connection.transport.abort()  # type: ignore[union-attr]
                    connection = await reconnect(kind)
                    continue
                counters.latencies[kind].append(time.perf_counter() - started)
                counters.finished.append(time.time())
                counters.done[kind] += 1
                if status != EXPECTED[kind]:
                    counters.errors[f"{kind} {status}"] += 1
                elif kind == "post":
                    created = json.loads(body)["id"]
            connection.transport.close()  # type: ignore[union-attr]

        loops = [asyncio.create_task(connection_loop(index)) for index in range(connections)]
        while not stop.is_set():
            await asyncio.sleep(REPORT_EVERY)
            out.put(("crud", os.getpid(), counters))
            counters = _Crud()
        running = False
        await asyncio.gather(*loops)
        out.put(("crud", os.getpid(), counters))
        out.put(("crud-end", os.getpid(), own_cpu(), meter.share()))

    uvloop.run(run())


# -- the driver ------------------------------------------------------------------------------


@dataclass
class Observed:
    """Everything the client processes and the tracker reported, as the driver saw it."""

    ws: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    """Follower process -> its latest (connected, finals, closes)."""
    ws_end: dict[int, tuple[dict[str, int], int, int, float]] = field(default_factory=dict)
    crud_done: Counter[str] = field(default_factory=Counter)
    crud_errors: Counter[str] = field(default_factory=Counter)
    crud_latencies: dict[str, array] = field(default_factory=lambda: {kind: array("d") for kind in CRUD_KINDS})
    crud_finished: array = field(default_factory=lambda: array("d"))
    crud_end: dict[int, tuple[int, float]] = field(default_factory=dict)
    """CRUD process -> (its CPU, its CPU share)."""
    posted: dict[str, tuple[str, float]] = field(default_factory=dict)
    """operationId -> (kind, epoch s of its POST)."""
    refused: Counter[str] = field(default_factory=Counter)
    """Job POSTs not answered 202, by kind and status."""
    finals: dict[str, tuple[str, float]] = field(default_factory=dict)
    """operationId -> (final message type, epoch s it reached the tracker)."""
    tracker_duplicates: int = 0
    tracker_reconnects: int = 0
    unfinished: Counter[str] = field(default_factory=Counter)
    """Status (from ``GET /api/jobs``) of each posted job with no final message after the drain."""

    def errors_of(self, kind: str) -> int:
        return sum(n for cause, n in self.crud_errors.items() if cause.startswith(kind + " "))

    def take(self, item: tuple) -> None:
        kind, source, *rest = item
        if kind == "ws":
            self.ws[source] = tuple(rest)  # type: ignore[assignment]
        elif kind == "ws-end":
            self.ws_end[source] = tuple(rest)  # type: ignore[assignment]
        elif kind == "crud":
            counters: _Crud = rest[0]
            self.crud_done.update(counters.done)
            self.crud_errors.update(counters.errors)
            for name, values in counters.latencies.items():
                self.crud_latencies[name].extend(values)
            self.crud_finished.extend(counters.finished)
        elif kind == "crud-end":
            self.crud_end[source] = tuple(rest)  # type: ignore[assignment]

    def jobs_with(self, final_type: str) -> int:
        return sum(1 for message_type, _ in self.finals.values() if message_type == final_type)


def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except OSError:
        return 0, b""


def _post_json(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        return 0, None


def server_metrics(url: str) -> dict[str, int]:
    """The few ``/metrics`` figures a sample carries (empty if the endpoint does not answer)."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = _get(url + "/metrics")
    if status != 200:
        return {}
    figures = {"ws_srv": 0.0, "pool": 0.0, "server_5xx": 0.0, "evicted": 0.0}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == "nve_ws_clients":
                figures["ws_srv"] += sample.value
            elif sample.name == "nve_db_pool_connections" and sample.labels.get("state") == "open":
                figures["pool"] += sample.value
            elif sample.name == "nve_http_requests_total" and sample.labels.get("status", "").startswith("5"):
                figures["server_5xx"] += sample.value
            elif sample.name == "nve_ws_clients_evicted_total":
                figures["evicted"] += sample.value
    return {name: int(value) for name, value in figures.items()}  # counts, all of them


def job_bodies(filename: str, seconds: float) -> dict[str, tuple[str, dict[str, Any]]]:
    """kind -> (path, body) of each job of ``JOB_CYCLE`` on the uploaded clip."""
    return {
        "trim": ("/api/edit/trim", {"filename": filename, "startTime": seconds * 0.2, "endTime": seconds * 0.8,
                                    "mode": "copy"}),
        "split": ("/api/edit/split", {"filename": filename, "splitTime": seconds / 2}),
        "process": ("/api/edit/process", {"filename": filename, "edits": [
            {"type": "trim", "start": seconds * 0.1, "end": seconds * 0.9},
            {"type": "scale", "width": 160, "height": -1}, {"type": "fade", "in": 0.2, "out": 0.2}]}),
    }


async def _post_jobs(url: str, bodies: dict[str, tuple[str, dict[str, Any]]], rate: float, until: float,
                     observed: Observed, tracker: WsClient) -> None:
    """``rate`` jobs/s in ``JOB_CYCLE`` order until the monotonic time ``until``; each accepted one
    is subscribed to on ``tracker``."""
    started = time.monotonic()
    index = 0
    while (at := started + index / rate) < until:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        kind = JOB_CYCLE[index % len(JOB_CYCLE)]
        index += 1
        path, body = bodies[kind]
        posted_at = time.time()
        status, answer = await asyncio.to_thread(_post_json, url + path, body)
        if status != 202:
            observed.refused[f"{kind} {status}"] += 1
            continue
        observed.posted[answer["operationId"]] = (kind, posted_at)
        await tracker.subscribe([answer["operationId"]])


async def _track(tracker: WsClient, observed: Observed) -> None:
    """Records the first final message of each operation at the tracker; counts repeats."""
    async for message in tracker:
        if message.type in FINAL_KINDS and isinstance(message.data, dict):
            operation_id = message.data.get("operationId")
            if operation_id in observed.finals:
                observed.tracker_duplicates += 1
            elif operation_id is not None:
                observed.finals[operation_id] = (message.type, time.time())


@dataclass(frozen=True)
class Mark:
    """Where the previous sample left the CRUD counters: per-sample rates and percentiles start here."""

    at: float = field(default_factory=time.monotonic)
    done: int = 0
    latencies: dict[str, int] = field(default_factory=dict)
    """How many latencies of each kind had been collected."""


def sample_row(started: float, tree: TreeSample | None, server_cpu: float | None, metrics: dict[str, int],
               observed: Observed, previous: Mark) -> dict[str, Any]:
    """One sample's row: ``tree``, the server process's CPU share (percent) since the previous
    sample and ``metrics`` read now; the clients' figures as they last reported them."""
    done = sum(observed.crud_done.values())
    recent = [v for kind in CRUD_KINDS for v in observed.crud_latencies[kind][previous.latencies.get(kind, 0):]]
    since = time.monotonic() - previous.at
    connected = sum(c for c, _, _ in observed.ws.values())
    finished = sum(1 for o in observed.finals if o in observed.posted)
    return {
        "t_s": round(time.monotonic() - started, 1),
        "rss_mib": tree.rss_mib if tree else None, "main_mib": tree.main_rss_mib if tree else None,
        "procs": tree.processes if tree else None, "fds": tree.fds if tree else None,
        "pg": tree.pg_connections if tree else None, "srv_cpu": server_cpu,
        "ws": connected, "ws_srv": metrics.get("ws_srv"), "pool": metrics.get("pool"),
        "server_5xx": metrics.get("server_5xx"), "evicted": metrics.get("evicted"),
        "crud_done": done, "crud_err": sum(observed.crud_errors.values()),
        "crud_per_s": (done - previous.done) / since if since > 0 else None,
        "crud_p99_ms": summarize(recent)["p99_ms"] if recent else None,
        "crud_by_kind": {kind: {"done": observed.crud_done[kind], "errors": observed.errors_of(kind)}
                         for kind in CRUD_KINDS},
        "jobs": len(observed.posted), "done": observed.jobs_with("complete"), "failed": observed.jobs_with("error"),
        "finals": sum(f for _, f, _ in observed.ws.values()), "expected": connected * finished,
    }


def mark(observed: Observed, row: dict[str, Any]) -> Mark:
    return Mark(done=row["crud_done"], latencies={kind: len(observed.crud_latencies[kind]) for kind in CRUD_KINDS})


def progress_line(row: dict[str, Any]) -> str:
    """A sample in one line, printed as it is taken (the table comes at the end)."""
    memory = f"rss {row['rss_mib']:.1f} MiB (server {row['main_mib']:.1f}), fds {row['fds']}, pg {row['pg']}, " \
        if row["rss_mib"] is not None else ""
    return (f"[{row['t_s']:7.1f} s] {memory}ws {row['ws']}, crud {row['crud_done']} ({row['crud_err']} errors), "
            f"jobs {row['done']}/{row['jobs']} done ({row['failed']} failed), finals {row['finals']}/{row['expected']}")


# -- the verdict -----------------------------------------------------------------------------


def growth(samples: list[dict[str, Any]], key: str, duration: float) -> dict[str, Any]:
    """How ``key`` moved from the second quarter of the run (after warm-up) to the last: both
    medians, their difference (absolute and % of the first) and the least-squares slope over
    the second half, per minute. ``{"measured": False}`` when either quarter has < 2 samples."""
    values = [(s["t_s"], s[key]) for s in samples if s.get(key) is not None]
    second = [v for t, v in values if duration / 4 <= t < duration / 2]
    last = [v for t, v in values if t >= duration * 3 / 4]
    half = [(t, v) for t, v in values if t >= duration / 2]
    if len(second) < 2 or len(last) < 2:
        return {"measured": False}
    baseline, final = statistics.median(second), statistics.median(last)
    slope = statistics.linear_regression([t for t, _ in half], [v for _, v in half]).slope * 60
    return {"measured": True, "baseline": baseline, "final": final, "growth": final - baseline,
            "growth_pct": (final - baseline) / baseline * 100 if baseline else 0.0, "slope_per_min": slope}


def judge(document: dict[str, Any], max_growth_mib: float, max_growth_pct: float,
          max_fd_growth: float) -> dict[str, dict[str, Any]]:
    """The verdict's checks, each ``{"ok": bool, "text": ...}``, from the run's ``document``."""
    checks: dict[str, dict[str, Any]] = {}
    for key, label in (("rss_mib", "memory, server and workers"), ("main_mib", "memory, server process")):
        moved = document["memory"][key]
        if not moved["measured"]:
            checks[key] = {"ok": True, "text": f"{label}: not measured (too few samples, or not on this machine)"}
            continue
        allowed = max(max_growth_mib, moved["baseline"] * max_growth_pct / 100)
        checks[key] = {"ok": moved["growth"] <= allowed, "allowed": allowed,
                       "text": f"{label}: {moved['baseline']:.1f} -> {moved['final']:.1f} MiB "
                               f"({moved['growth']:+.1f} MiB, {moved['growth_pct']:+.1f} %; second-half slope "
                               f"{moved['slope_per_min']:+.2f} MiB/min), allowed +{allowed:.1f} MiB"}
    fds = document["memory"]["fds"]
    checks["fds"] = ({"ok": fds["growth"] <= max_fd_growth,
                      "text": f"open fds: {fds['baseline']:g} -> {fds['final']:g} ({fds['growth']:+g}), "
                              f"allowed +{max_fd_growth:g}"}
                     if fds["measured"] else {"ok": True, "text": "open fds: not measured"})
    errors = document["errors"]
    checks["errors"] = {"ok": errors["total"] == 0,
                        "text": "errors: " + ", ".join(f"{name} {value}" for name, value in errors.items())}
    jobs = document["jobs"]
    checks["jobs"] = {"ok": jobs["posted"] > 0 and jobs["done"] == jobs["posted"],
                      "text": f"jobs: {jobs['done']}/{jobs['posted']} done, {jobs['failed']} failed, "
                              f"{jobs['unfinished']} unfinished"}
    finals = document["finals"]
    checks["finals"] = {"ok": finals["delivered"] == finals["expected"] and not finals["operations_off"]
                        and not finals["followers_off"],
                        "text": f"finals: {finals['delivered']}/{finals['expected']} delivered; operations not "
                                f"reaching every follower once: {finals['operations_off']}; followers without "
                                f"exactly one per operation: {finals['followers_off']}"}
    return checks


# -- one run ---------------------------------------------------------------------------------


def run_soak(url: str, args: argparse.Namespace, client_cpus: list[int], clip: Path) -> tuple[dict, dict]:
    """The whole run against ``url``: (the JSON document, the raw samples for the plot)."""
    filename = upload_clip(url, clip)
    bodies = job_bodies(filename, args.clip_seconds)
    ids = seed(url, 100)
    target = Target.from_url(url)
    server_pid = listening_pid(target.port) if target.host in LOCAL_HOSTS else None
    pg_port = args.pg_port or urlsplit(PG_ADMIN).port or 5432
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    stop_followers, stop_crud = context.Event(), context.Event()
    observed = Observed()
    samples: list[dict[str, Any]] = []
    followers = start_clients(context, _follow, args.clients, args.processes, client_cpus,
                              lambda cpu, share: (cpu, target.host, target.port, share, out, stop_followers))
    crud = [context.Process(target=_crud, args=(url, ids, n, args.crud_rate * n / args.concurrency, out, stop_crud))
            for n in shares(args.concurrency, args.crud_processes) if n]
    try:
        deadline = time.monotonic() + 300
        while len(observed.ws) < len(followers):  # each reports once all its clients are connected
            if time.monotonic() > deadline or any(f.exitcode not in (None, 0) for f in followers):
                raise RuntimeError("the WebSocket clients did not connect")
            if (item := _next(out, 1.0)) is not None:
                observed.take(item)
        uvloop.run(_drive(url, args, target, server_pid, pg_port, bodies, crud, len(followers), out,
                          stop_followers, stop_crud, observed, samples))
    finally:
        stop_crud.set()
        stop_followers.set()
        for process in (*followers, *crud):
            if process.pid is not None:
                process.join(30)
                if process.is_alive():
                    process.kill()
    return summarize_run(url, args, samples, observed, len(followers) + len(crud)), _plot_samples(observed)


async def _drive(url: str, args: argparse.Namespace, target: Target, server_pid: int | None, pg_port: int,
                 bodies: dict[str, tuple[str, dict[str, Any]]], crud: list[Any], followers: int,
                 out: multiprocessing.Queue, stop_followers: Any, stop_crud: Any,  # type: ignore[type-arg]
                 observed: Observed, samples: list[dict[str, Any]]) -> None:
    """The timed part, with every follower connected: load, samples, drain, the last sample."""
    tracker = WsClient(f"ws://{target.host}:{target.port}/ws")
    await tracker.connect()
    tracking = asyncio.create_task(_track(tracker, observed))
    collecting = asyncio.create_task(_collect(out, observed))
    started = time.monotonic()
    previous = Mark()
    cpu = ProcessCpu(server_pid) if server_pid else None

    async def take_sample() -> None:
        nonlocal previous
        tree = await asyncio.to_thread(sample_tree, server_pid, pg_port) if server_pid else None
        share = None
        if cpu is not None:
            share = cpu.figures(0)["server_cpu"]
            cpu.reset()
        row = sample_row(started, tree, share, await asyncio.to_thread(server_metrics, url), observed, previous)
        samples.append(row)
        previous = mark(observed, row)
        print(progress_line(row), flush=True)

    try:
        for process in crud:
            process.start()
        posting = asyncio.create_task(_post_jobs(url, bodies, args.job_rate, started + args.duration, observed,
                                                 tracker))
        index = 0
        while index * args.sample_every <= args.duration + 1e-6:
            await asyncio.sleep(max(0.0, started + index * args.sample_every - time.monotonic()))
            await take_sample()
            index += 1
        await posting
        stop_crud.set()
        drain_until = time.monotonic() + args.drain
        while observed.posted.keys() - observed.finals.keys() and time.monotonic() < drain_until:
            await asyncio.sleep(0.1)
        for operation_id in observed.posted.keys() - observed.finals.keys():
            status, body = await asyncio.to_thread(_get, f"{url}/api/jobs/{operation_id}")
            observed.unfinished[json.loads(body)["status"] if status == 200 else f"HTTP {status}"] += 1
        await _settle_followers(observed, len(observed.posted), drain_until)
        while len(observed.crud_end) < len(crud) and time.monotonic() < drain_until + REQUEST_TIMEOUT:
            await asyncio.sleep(0.1)
        await take_sample()
        stop_followers.set()
        while len(observed.ws_end) < followers and time.monotonic() < drain_until + 60:
            await asyncio.sleep(0.1)
    finally:
        observed.tracker_reconnects = tracker.reconnects
        await tracker.close()
        await asyncio.gather(tracking, return_exceptions=True)
        collecting.cancel()
        await asyncio.gather(collecting, return_exceptions=True)


def _next(out: multiprocessing.Queue, timeout: float) -> tuple | None:  # type: ignore[type-arg]
    try:
        return out.get(True, timeout)
    except queue.Empty:
        return None


async def _collect(out: multiprocessing.Queue, observed: Observed) -> None:  # type: ignore[type-arg]
    """Hands every report of the client processes to ``observed`` as it arrives."""
    while True:
        item = await asyncio.to_thread(_next, out, 0.5)
        if item is not None:
            observed.take(item)


async def _settle_followers(observed: Observed, jobs: int, until: float) -> None:
    """Waits until the followers report every final of ``jobs`` jobs, or report nothing new for
    5 s (whatever is missing is not coming), or ``until``."""
    last, changed = -1, time.monotonic()
    while time.monotonic() < until:
        connected = sum(c for c, _, _ in observed.ws.values())
        delivered = sum(f for _, f, _ in observed.ws.values())
        if delivered >= connected * jobs:
            return
        if delivered != last:
            last, changed = delivered, time.monotonic()
        elif time.monotonic() - changed > 5:
            return
        await asyncio.sleep(REPORT_EVERY / 2)


def summarize_run(url: str, args: argparse.Namespace, samples: list[dict[str, Any]], observed: Observed,
                  client_processes: int) -> dict[str, Any]:
    """The JSON document of a finished run: samples, per-kind rows, the verdict's inputs and the verdict.
    ``client_processes`` is how many follower and CRUD processes should have reported their end."""
    posted = observed.posted
    ours = {operation_id: observed.finals[operation_id] for operation_id in posted if operation_id in observed.finals}
    clients = args.clients
    connected_min = min((s["ws"] for s in samples), default=0)
    per_operation: Counter[str] = Counter()
    followers_off = 0
    for counts, off, _, _ in observed.ws_end.values():
        per_operation.update({o: n for o, n in counts.items() if o in posted})
        followers_off += off
    delivered = sum(per_operation.values())
    rows = []
    duration = args.duration
    for kind in CRUD_KINDS:
        rows.append({"metric": f"crud {kind}", "count": observed.crud_done[kind],
                     "per_s": observed.crud_done[kind] / duration, **summarize(observed.crud_latencies[kind]),
                     "errors": observed.errors_of(kind)})
    for kind in dict.fromkeys(JOB_CYCLE):
        mine = [o for o, (k, _) in posted.items() if k == kind]
        ends = [ours[o][1] - posted[o][1] for o in mine if o in ours and ours[o][0] == "complete"]
        refused = sum(n for cause, n in observed.refused.items() if cause.startswith(kind + " "))
        rows.append({"metric": f"job {kind} (POST -> complete)", "count": len(ends), "per_s": len(ends) / duration,
                     **summarize(ends), "errors": len(mine) - len(ends) + refused})
    first, last = (samples[0], samples[-1]) if samples else ({}, {})
    server_5xx = (last.get("server_5xx") or 0) - (first.get("server_5xx") or 0)
    evicted = (last.get("evicted") or 0) - (first.get("evicted") or 0)
    errors = {
        "crud": sum(observed.crud_errors.values()), "job_posts_refused": sum(observed.refused.values()),
        "ws_disconnected": clients - connected_min,
        "ws_close_frames": sum(closed for _, _, closed in observed.ws.values()), "ws_evicted": int(evicted),
        "tracker_reconnects": observed.tracker_reconnects, "tracker_duplicate_finals": observed.tracker_duplicates,
        "server_5xx": int(server_5xx),
        "client_processes_lost": client_processes - len(observed.ws_end) - len(observed.crud_end),
    }
    document: dict[str, Any] = {
        "url": url, "clients": clients, "duration_s": duration, "sample_every_s": args.sample_every,
        "crud_rate": args.crud_rate, "job_rate": args.job_rate, "samples": samples, "rows": rows,
        "crud_errors_by_cause": dict(observed.crud_errors), "job_posts_refused_by_cause": dict(observed.refused),
        "memory": {key: growth(samples, key, duration) for key in ("rss_mib", "main_mib", "fds")},
        "jobs": {"posted": len(posted), "done": sum(1 for t, _ in ours.values() if t == "complete"),
                 "failed": sum(1 for t, _ in ours.values() if t == "error"), "unfinished": len(posted) - len(ours),
                 "unfinished_by_status": dict(observed.unfinished)},
        "finals": {"delivered": delivered, "expected": clients * len(posted),
                   "operations_off": sum(1 for o in posted if per_operation[o] != clients),
                   "followers_off": followers_off},
        "errors": errors,
        **client_load(per_cpu([(cpu, share) for *_, cpu, share in observed.ws_end.values()]
                              + list(observed.crud_end.values()))),
    }
    errors["total"] = sum(errors.values())
    checks = judge(document, args.max_growth_mib, args.max_growth_pct, args.max_fd_growth)
    document["verdict"] = {"ok": all(check["ok"] for check in checks.values()), "checks": checks}
    return document


def _plot_samples(observed: Observed) -> dict[str, dict[str, list[float]]]:
    ends = {kind: [observed.finals[o][1] - at for o, (k, at) in observed.posted.items()
                   if k == kind and o in observed.finals] for kind in dict.fromkeys(JOB_CYCLE)}
    start = min(observed.crud_finished, default=0.0)
    return {
        "cdfs": {**{f"crud {kind}": list(observed.crud_latencies[kind]) for kind in CRUD_KINDS},
                 **{f"job {kind}": values for kind, values in ends.items()}},
        "events": {"crud responses": [t - start for t in observed.crud_finished],
                   "jobs complete": [at - start for o, (_, at) in observed.finals.items() if o in observed.posted]},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf soak", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=1000, help="WebSocket clients following every job")
    parser.add_argument("--processes", type=int, default=2, help="client processes holding them")
    parser.add_argument("--sample-every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--concurrency", type=int, default=8, help="CRUD keep-alive connections")
    parser.add_argument("--crud-processes", type=int, default=1, help="client processes of the CRUD load")
    parser.add_argument("--crud-rate", type=float, default=200.0, help="CRUD requests/s in all (0: unpaced)")
    parser.add_argument("--job-rate", type=float, default=2.0, help="media jobs/s")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for the last jobs")
    parser.add_argument("--clip-seconds", type=float, default=4.0, help="length of the generated clip")
    parser.add_argument("--workers", type=int, default=1, help="media workers of a server of its own")
    parser.add_argument("--pg-port", type=int, help="PostgreSQL's port, to count the server's connections "
                                                    "(default: NVE_BENCH_PG's)")
    parser.add_argument("--max-growth-mib", type=float, default=8.0, help="memory growth allowed, MiB")
    parser.add_argument("--max-growth-pct", type=float, default=5.0, help="memory growth allowed, %% of the baseline")
    parser.add_argument("--max-fd-growth", type=float, default=16.0, help="open fds growth allowed")
    add_target_args(parser)
    add_output_args(parser)
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        url, client_cpus, clip = open_media_target(stack, args, "soak")
        print(f"soak against {url}: {args.clients} WebSocket clients, CRUD {args.crud_rate:g} req/s on "
              f"{args.concurrency} connections, {args.job_rate:g} jobs/s, {args.duration:g} s, a sample every "
              f"{args.sample_every:g} s")
        document, samples = run_soak(url, args, client_cpus, clip)
    print()
    print_table(document["samples"], SAMPLE_COLUMNS)
    print()
    print_table(document["rows"], ["metric", "count", "per_s", "p50_ms", "p99_ms", "max_ms", "errors"])
    verdict = document["verdict"]
    print(f"\nverdict: {'PASS' if verdict['ok'] else 'FAIL'}"
          + (f" (client CPU {document['client_cpu']} %: SATURATED)" if document["client_saturated"] else ""))
    for check in verdict["checks"].values():
        print(f"  {'ok  ' if check['ok'] else 'FAIL'} {check['text']}")
    write_json(args.json, document)
    if args.plot:
        from perf.plot import plot

        plot(args.plot, f"soak: {args.clients} WebSocket clients + CRUD + jobs, {args.duration:g} s",
             samples["cdfs"], samples["events"], bin_s=max(1.0, args.duration / 200))
    if not verdict["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
