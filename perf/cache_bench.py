"""Benchmark of the metadata cache through the whole server.

    python -m perf.cache_bench [--concurrency 32] [--duration 10] [--files 500]

Self-contained: it starts a private ``redis-server``, a fresh PostgreSQL database on
``--pg`` (dropped afterwards) and the server in a child process, with a media directory of
``--files`` names (hard links to one tiny clip it encodes). Then it measures:

1. The cache-hit path: ``GET /api/metadata/{file}`` over files already cached, from
   ``--concurrency`` keep-alive connections in a client process of its own: req/s, p50,
   p99 (the client flags itself when it, not the server, is the bottleneck), and the
   server process's CPU share and CPU microseconds per request (the steadier figure on a
   shared machine). The same load on ``GET /healthz`` first, as the floor the HTTP server
   itself sets. The server is pinned to ``--server-cpu`` (default 0), this process and
   its client to the other CPUs.
2. The Redis round trip: sequential ``GET``s of a cached document through
   :class:`core.kv.connection.RedisConnection` from this process (p50/p99), and the
   server's own view under the load of (1) from its ``nve_redis_command_seconds``
   histogram (p99 as the upper bound of its bucket).
3. The hit ratio on a replayed Zipf workload: from an empty cache, ``--zipf-requests``
   requests whose files are drawn with popularity ~ 1/rank^s (``--zipf-s``, seeded),
   replayed at concurrency 8; ratio = hits / requests from the server's counters.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import logging
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from fractions import Fraction
from pathlib import Path

import uvloop
from prometheus_client.parser import text_string_to_metric_families

from perf.httpclient import Results, Target, build_request, run_load
from perf.servers import sql
from perf.stats import (
    CpuMeter,
    ProcessCpu,
    add_output_args,
    client_load,
    percentile,
    print_table,
    summarize,
    write_json,
)
from perf.ws_bench import pin_cpus


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def encode_clip(path: Path) -> None:
    """A 2 s 320x240 H.264 MP4 (what the probe reads; the content does not matter)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.time_base = Fraction(1, 25)
        for index in range(50):
            image = np.full((240, 320, 3), index * 5 % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _serve(settings_kwargs: dict[str, object], ready: multiprocessing.Queue, cpu: int | None) -> None:
    """Child process: the whole server, as ``nve serve`` runs it (no access log), on ``cpu``."""
    from core.config import Settings
    from server.cli.serve import start

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def main() -> None:
        settings = Settings(**settings_kwargs)  # type: ignore[arg-type]
        running = await start(settings, str(settings.database_url))
        ready.put(running.port)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await running.stop()

    logging.basicConfig(level=logging.WARNING)
    uvloop.run(main())


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(_get(url + "/metrics").decode()):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def histogram_p99(before: dict, after: dict, name: str) -> float:
    """Upper bound (ms) of the bucket holding the 99th percentile of what was observed between."""
    buckets = sorted(
        (float(labels[0][1]), after[(key, labels)] - before.get((key, labels), 0.0))
        for key, labels in after if key == f"{name}_bucket")
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= 0.99 * total:
            return bound * 1000
    return float("inf")


def _client(port: int, paths: list[str], concurrency: int, duration: float,
            out: multiprocessing.Queue) -> None:
    """Client process: keep-alive load over ``paths``; sends back latencies, errors, CPU share."""
    target = Target("127.0.0.1", port)
    requests = [build_request("GET", path, f"127.0.0.1:{port}") for path in paths]

    def make(index: int, n: int) -> bytes:
        return requests[(index * 7 + n) % len(requests)]

    meter = CpuMeter()
    results: Results = uvloop.run(run_load(target, make, concurrency, duration, 200))
    out.put((results, meter.share()))


def hit_path(port: int, server_pid: int, paths: list[str], concurrency: int,
             duration: float) -> tuple[dict[str, object], Results]:
    """The load of one client process (its own interpreter, so it does not share the server's loop):
    its row, and its raw latencies and completion times (for the plot)."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    worker = multiprocessing.Process(target=_client, args=(port, paths, concurrency, duration, queue))
    server_cpu = ProcessCpu(server_pid)
    worker.start()
    results, cpu = queue.get()
    worker.join()
    return {"requests": len(results.latencies), "req_per_s": len(results.latencies) / duration,
            **summarize(results.latencies), "errors": results.errors, **client_load([cpu]),
            **server_cpu.figures(len(results.latencies))}, results


async def redis_round_trip(redis_url: str, key: str, count: int) -> dict[str, float]:
    from core.kv.connection import RedisConnection

    kv = RedisConnection(redis_url)
    try:
        timings = []
        for _ in range(count):
            started = time.perf_counter()
            await kv.run(lambda client: client.get(key))
            timings.append(time.perf_counter() - started)
    finally:
        await kv.close()
    ordered = sorted(timings)
    return {"p50_ms": percentile(ordered, 0.5) * 1000, "p99_ms": percentile(ordered, 0.99) * 1000}


def zipf_sequence(files: int, requests: int, s: float, seed: int) -> list[int]:
    weights = [1 / (rank ** s) for rank in range(1, files + 1)]
    cumulative, total = [], 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    rng = random.Random(seed)
    return [bisect.bisect_left(cumulative, rng.random() * total) for _ in range(requests)]


async def replay(port: int, paths: list[str], concurrency: int) -> int:
    """Send ``paths`` in order over ``concurrency`` connections; the number of non-200s."""
    from perf.httpclient import open_connection

    target = Target("127.0.0.1", port)
    queue = iter(paths)
    failures = 0

    async def worker() -> None:
        nonlocal failures
        connection = await open_connection(target)
        for path in queue:
            status, _ = await connection.request(build_request("GET", path, f"127.0.0.1:{port}"))
            failures += status != 200
        connection.transport.close()  # type: ignore[union-attr]

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf.cache_bench")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--hot", type=int, default=50, help="cached files the hit-path load spreads over")
    parser.add_argument("--zipf-requests", type=int, default=20_000)
    parser.add_argument("--zipf-s", type=float, default=1.0)
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the server is pinned to (-1: none)")
    parser.add_argument("--pg", default=os.environ.get("NVE_TEST_PG",
                                                       "postgresql://postgres@127.0.0.1:5432/postgres"))
    add_output_args(parser)
    args = parser.parse_args(argv)
    server_cpu, _ = pin_cpus(args.server_cpu)

    workdir = Path(tempfile.mkdtemp(prefix="nve-cache-bench-"))
    media = workdir / "media"
    media.mkdir()
    encode_clip(workdir / "clip.mp4")
    names = [f"clip-{index:04d}.mp4" for index in range(args.files)]
    for name in names:
        os.link(workdir / "clip.mp4", media / name)

    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    database = f"nve_cache_bench_{uuid.uuid4().hex[:8]}"
    base = args.pg.rpartition("/")[0]
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Queue()
    server = spawn.Process(target=_serve, args=({
        "host": "127.0.0.1", "port": 0, "data_dir": workdir / "data", "media_dir": media,
        "database_url": f"{base}/{database}", "redis_url": redis_url, "workers": 0}, ready, server_cpu))
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(workdir)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sql(args.pg, f'CREATE DATABASE "{database}"')
        server.start()
        port = ready.get(timeout=60)
        url = f"http://127.0.0.1:{port}"
        hot = [f"/api/metadata/{name}" for name in names[: args.hot]]
        for path in hot:
            _get(url + path)
        assert server.pid is not None
        hit_path(port, server.pid, hot, args.concurrency, min(2.0, args.duration))  # warm-up
        floor, floor_raw = hit_path(port, server.pid, ["/healthz"], args.concurrency, args.duration)
        before = scrape(url)
        load, load_raw = hit_path(port, server.pid, hot, args.concurrency, args.duration)
        after = scrape(url)
        hits = after[("nve_metadata_cache_hits_total", ())] - before[("nve_metadata_cache_hits_total", ())]
        load["hit_share"] = hits / max(1, load["requests"])  # type: ignore[operator]
        server_p99 = histogram_p99(before, after, "nve_redis_command_seconds")
        rtt = uvloop.run(redis_round_trip(redis_url, f"metadata:{names[0]}", 5000))

        subprocess.run(["redis-cli", "-p", str(redis_port), "FLUSHALL"], check=True,
                       stdout=subprocess.DEVNULL)
        sequence = zipf_sequence(args.files, args.zipf_requests, args.zipf_s, seed=7)
        before = scrape(url)
        failures = uvloop.run(replay(port, [f"/api/metadata/{names[i]}" for i in sequence], 8))
        after = scrape(url)
        counts = {kind: after[(f"nve_metadata_cache_{kind}_total", ())]
                  - before[(f"nve_metadata_cache_{kind}_total", ())] for kind in ("hits", "misses", "coalesced")}
        zipf_ratio = counts["hits"] / max(1.0, sum(counts.values()))
    finally:
        if server.pid is not None:
            os.kill(server.pid, signal.SIGTERM)
            server.join(30)
        redis.kill()
        redis.wait()
        sql(args.pg, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"GET /api/metadata/:file, cache hit, concurrency {args.concurrency}, {args.duration:g} s, "
          f"{args.hot} hot files")
    floor["path"], load["path"] = "GET /healthz (the server's floor)", "GET /api/metadata/:file"
    print_table([floor, load], ["path", "requests", "req_per_s", "p50_ms", "p99_ms", "max_ms", "errors", "hit_share",
                         "client_cpu", "client_saturated", "server_cpu", "server_us_per_req"])
    print(f"Redis round trip (sequential, RedisConnection): p50 {rtt['p50_ms']:.3f} ms, "
          f"p99 {rtt['p99_ms']:.3f} ms; server-side under the load above: p99 <= {server_p99:g} ms")
    print(f"Zipf replay ({args.zipf_requests} requests, {args.files} files, s={args.zipf_s:g}, "
          f"{len(set(sequence))} distinct, concurrency 8, cold cache): hit ratio {zipf_ratio:.1%} "
          f"(hits {counts['hits']:.0f}, misses {counts['misses']:.0f}, coalesced "
          f"{counts['coalesced']:.0f}), {failures} non-200")
    write_json(args.json, {"rows": [floor, load], "redis_rtt": rtt, "server_redis_p99_ms": server_p99,
                           "zipf": {"requests": args.zipf_requests, "hit_ratio": zipf_ratio, **counts,
                                    "errors": failures}})
    if args.plot:
        from perf.plot import plot

        plot(args.plot, f"cache: GET /api/metadata/:file, concurrency {args.concurrency}",
             {"GET /healthz": floor_raw.latencies, "metadata (cache hit)": load_raw.latencies},
             {"GET /healthz": [t - floor_raw.finished[0] for t in floor_raw.finished],
              "metadata (cache hit)": [t - load_raw.finished[0] for t in load_raw.finished]})


if __name__ == "__main__":
    main()
