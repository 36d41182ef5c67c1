"""HTTP load on the Projects API: GET by id, GET of 100 rows, POST, PUT.

    python -m perf http-crud --url http://127.0.0.1:3001 --concurrency 32 --duration 10

Seeds its own projects through the API first. Load comes from ``--processes`` client
processes (the connections are split between them); each reports the share of its wall
time it spent on CPU, and a client above 90 % is flagged as saturated, since then the
figures measure the client rather than the server.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
import urllib.request
from pathlib import Path

import uvloop

from perf.httpclient import Results, Target, build_request, run_load
from perf.stats import print_table, summarize, write_json

TIMELINE = {"currentTime": 12.5, "zoom": 2, "markers": [{"time": 3, "label": "intro"}],
            "edits": [{"type": "trim", "start": 1, "end": 20}, {"type": "fade", "in": 0.5}]}


def _api(url: str, method: str, path: str, body: object | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def seed(url: str, rows: int) -> list[int]:
    ids = []
    for index in range(rows):
        row = _api(url, "POST", "/api/projects", {
            "name": f"perf project {index}", "videoFilename": f"perf-{index}.mp4",
            "videoUrl": f"/videos/perf-{index}.mp4", "timelineState": TIMELINE})
        ids.append(row["id"])  # type: ignore[index]
    return ids


def request_factory(scenario: str, host: str, ids: list[int]):
    post_body = json.dumps({"name": "load", "videoFilename": "l.mp4", "videoUrl": "/videos/l.mp4",
                            "timelineState": TIMELINE}).encode()
    put_body = json.dumps({"timelineState": TIMELINE}).encode()
    gets = [build_request("GET", f"/api/projects/{i}", host) for i in ids]
    puts = [build_request("PUT", f"/api/projects/{i}", host, put_body) for i in ids]
    listing = build_request("GET", "/api/projects?limit=100", host)
    post = build_request("POST", "/api/projects", host, post_body)

    def make(index: int, n: int) -> bytes:
        if scenario == "get":
            return gets[(index * 7 + n) % len(gets)]
        if scenario == "list":
            return listing
        if scenario == "post":
            return post
        return puts[(index * 7 + n) % len(puts)]

    return make


EXPECT = {"get": 200, "list": 200, "post": 201, "put": 200}


def _client_process(url: str, scenario: str, ids: list[int], connections: int, duration: float,
                    out: multiprocessing.Queue) -> None:
    target = Target.from_url(url)
    make = request_factory(scenario, f"{target.host}:{target.port}", ids)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results: Results = uvloop.run(run_load(target, make, connections, duration, EXPECT[scenario]))
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    out.put((results.latencies, results.errors, cpu))


def run_scenario(url: str, scenario: str, ids: list[int], concurrency: int, duration: float,
                 processes: int) -> dict[str, object]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    share = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    workers = [multiprocessing.Process(target=_client_process,
                                       args=(url, scenario, ids, n, duration, queue)) for n in share if n]
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    errors = 0
    cpu: list[float] = []
    for _ in workers:
        lat, err, load = queue.get()
        latencies += lat
        errors += err
        cpu.append(load)
    for worker in workers:
        worker.join()
    return {"scenario": scenario, "requests": len(latencies), "req_per_s": len(latencies) / duration,
            **summarize(latencies), "errors": errors, "client_cpu": max(cpu),
            "client_saturated": max(cpu) > 0.9}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf http-crud")
    parser.add_argument("--url", default="http://127.0.0.1:3001")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    parser.add_argument("--scenarios", default="get,list,post,put")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)

    ids = seed(args.url, 100)
    rows = []
    for scenario in args.scenarios.split(","):
        run_scenario(args.url, scenario, ids, args.concurrency, min(2.0, args.duration), args.processes)  # warm-up
        rows.append(run_scenario(args.url, scenario, ids, args.concurrency, args.duration, args.processes))
    print(f"http-crud against {args.url}: concurrency {args.concurrency}, {args.duration:g} s per scenario, "
          f"{args.processes} client process(es)")
    print_table(rows, ["scenario", "req_per_s", "p50_ms", "p99_ms", "max_ms", "errors", "client_cpu",
                       "client_saturated"])
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
