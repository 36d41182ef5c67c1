"""HTTP load on the Projects API: GET by id, GET of 100 rows, POST, PUT, and a mix of the four.

    python -m perf http-crud --url http://127.0.0.1:3001 --concurrency 32 --duration 10 --plot crud.png

Seeds its own projects through the API first. Load comes from ``--processes`` client
processes (the connections are split between them); each reports the share of its wall
time it spent on CPU, and a client above 90 % is flagged as saturated, since then the
figures measure the client rather than the server. With ``--server-pid`` (a server on this
machine) it also reports the server process's CPU share and its CPU microseconds per
request, the figure to compare across runs on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import urllib.request

import uvloop

from perf.httpclient import Results, Target, build_request, run_load
from perf.stats import CpuMeter, ProcessCpu, add_output_args, client_load, print_table, shares, summarize, write_json

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
        kind = ("get", "list", "put", "post")[n % 4] if scenario == "mix" else scenario
        if kind == "get":
            return gets[(index * 7 + n) % len(gets)]
        if kind == "list":
            return listing
        if kind == "post":
            return post
        return puts[(index * 7 + n) % len(puts)]

    return make


EXPECT = {"get": 200, "list": 200, "post": 201, "put": 200, "mix": frozenset({200, 201})}


def _client_process(url: str, scenario: str, ids: list[int], connections: int, duration: float,
                    out: multiprocessing.Queue) -> None:
    target = Target.from_url(url)
    make = request_factory(scenario, f"{target.host}:{target.port}", ids)
    meter = CpuMeter()
    results: Results = uvloop.run(run_load(target, make, connections, duration, EXPECT[scenario]))
    out.put((results.latencies, results.finished, results.errors, meter.share()))


def run_scenario(url: str, scenario: str, ids: list[int], concurrency: int, duration: float,
                 processes: int, server_pid: int | None = None) -> tuple[dict[str, object], Results]:
    """The row of one load run, and its raw latencies and completion times (for the plot)."""
    server_cpu = ProcessCpu(server_pid) if server_pid is not None else None
    queue: multiprocessing.Queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_client_process, args=(url, scenario, ids, n, duration, queue))
               for n in shares(concurrency, processes) if n]
    for worker in workers:
        worker.start()
    merged = Results()
    cpu: list[float] = []
    for _ in workers:
        latencies, finished, errors, load = queue.get()
        merged.latencies += latencies
        merged.finished += finished
        merged.errors += errors
        cpu.append(load)
    for worker in workers:
        worker.join()
    row = {"scenario": scenario, "requests": len(merged.latencies), "req_per_s": len(merged.latencies) / duration,
           **summarize(merged.latencies), "errors": merged.errors, **client_load(cpu)}
    if server_cpu is not None:
        row.update(server_cpu.figures(len(merged.latencies)))
    return row, merged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf http-crud")
    parser.add_argument("--url", default="http://127.0.0.1:3001")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    parser.add_argument("--server-pid", type=int, help="the server's process id, when it runs on this machine: "
                                                       "also report its CPU share and CPU time per request")
    parser.add_argument("--scenarios", default="get,list,post,put",
                        help="comma-separated, of get, list, post, put, mix (the four in turn)")
    add_output_args(parser)
    args = parser.parse_args(argv)

    ids = seed(args.url, 100)
    rows, raw = [], {}
    for scenario in args.scenarios.split(","):
        run_scenario(args.url, scenario, ids, args.concurrency, min(2.0, args.duration), args.processes)  # warm-up
        row, raw[scenario] = run_scenario(args.url, scenario, ids, args.concurrency, args.duration, args.processes,
                                          args.server_pid)
        rows.append(row)
    print(f"http-crud against {args.url}: concurrency {args.concurrency}, {args.duration:g} s per scenario, "
          f"{args.processes} client process(es)")
    server_columns = ["server_cpu", "server_us_per_req"] if args.server_pid is not None else []
    print_table(rows, ["scenario", "req_per_s", "p50_ms", "p99_ms", "max_ms", "errors", "client_cpu",
                       "client_saturated", *server_columns])
    write_json(args.json, rows)
    if args.plot:
        from perf.plot import plot

        # Scenarios run one after another: each one's curve is drawn from its own start.
        plot(args.plot, f"http-crud, concurrency {args.concurrency}",
             {name: results.latencies for name, results in raw.items()},
             {name: [t - min(results.finished) for t in results.finished]
              for name, results in raw.items() if results.finished})


if __name__ == "__main__":
    main()
