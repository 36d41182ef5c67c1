"""HTTP load on the Projects API: GET by id, GET of 100 rows, POST, PUT, a mix of the four, and
the metadata cache hit (``meta``); against a server by URL, the journal's Node stack, or both A/B.

    python -m perf http-crud --url http://127.0.0.1:3001 --concurrency 32 --duration 10 --plot crud.png
    python -m perf http-crud --peer node --scenarios get,list,post,put,meta
    python -m perf http-crud --ab --rounds 3 --duration 5 --scenarios get,list,meta,put,post

With ``--url`` it seeds its own projects through the API first.

``--peer node`` starts the journal's Node stack (``perf/peers/node-http``: express + pg +
ioredis, the journal's code paths; ``npm ci --prefix perf/peers/node-http`` once) itself,
pinned with taskset to ``--server-cpu``, on a scratch database holding the journal's schema, with 100
projects seeded in SQL and 50 documents ``metadata:perf-ab-NN.mp4`` written to Redis for ``meta``.

``--ab`` runs ours (``python -m server.cli serve --workers 0 --no-access-log``, rate limits
raised far out of the way) and the Node peer in one invocation: each started once on a scratch
database of its own (same PostgreSQL, same Redis), both pinned to ``--server-cpu``, the load
pinned to ``--client-cpu``; a warm-up pass of every scenario on each; then ``--rounds`` rounds,
the order of the two servers alternating, and before each server's turn its projects table
truncated and reseeded with the same 100 rows. ``meta`` spreads over 50 files whose documents
both serve from the same Redis keys (our server probes a clip into them, the Node peer reads
them): over one file only, our single-flight lookup would serve most requests without Redis. Per round, server
and scenario: req/s, p99, and the CPU microseconds per request of the server process, of the
PostgreSQL backends serving it (``pg_stat_activity`` by its database, ``/proc/PID/stat``) and
of redis-server; then the same-run ratios ours/Node with both p99s. Load comes from ``--processes`` client
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
import os
import urllib.request
from contextlib import ExitStack

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


def request_factory(scenario: str, host: str, ids: list[int], filenames: tuple[str, ...] = ("perf.mp4",)):
    post_body = json.dumps({"name": "load", "videoFilename": "l.mp4", "videoUrl": "/videos/l.mp4",
                            "timelineState": TIMELINE}).encode()
    put_body = json.dumps({"timelineState": TIMELINE}).encode()
    gets = [build_request("GET", f"/api/projects/{i}", host) for i in ids]
    puts = [build_request("PUT", f"/api/projects/{i}", host, put_body) for i in ids]
    listing = build_request("GET", "/api/projects?limit=100", host)
    post = build_request("POST", "/api/projects", host, post_body)
    metadata = [build_request("GET", f"/api/metadata/{name}", host) for name in filenames]

    def make(index: int, n: int) -> bytes:
        kind = ("get", "list", "put", "post")[n % 4] if scenario == "mix" else scenario
        if kind == "get":
            return gets[(index * 7 + n) % len(gets)]
        if kind == "list":
            return listing
        if kind == "post":
            return post
        if kind == "meta":
            return metadata[(index * 7 + n) % len(metadata)]
        return puts[(index * 7 + n) % len(puts)]

    return make


EXPECT = {"get": 200, "list": 200, "post": 201, "put": 200, "meta": 200, "mix": frozenset({200, 201})}


def _client_process(url: str, scenario: str, ids: list[int], connections: int, duration: float,
                    out: multiprocessing.Queue, filenames: tuple[str, ...]) -> None:
    target = Target.from_url(url)
    make = request_factory(scenario, f"{target.host}:{target.port}", ids, filenames)
    meter = CpuMeter()
    results: Results = uvloop.run(run_load(target, make, connections, duration, EXPECT[scenario]))
    out.put((results.latencies, results.finished, results.errors, meter.share()))


def run_scenario(url: str, scenario: str, ids: list[int], concurrency: int, duration: float,
                 processes: int, server_pid: int | None = None,
                 filenames: tuple[str, ...] = ("perf.mp4",)) -> tuple[dict[str, object], Results]:
    """The row of one load run, and its raw latencies and completion times (for the plot);
    ``filenames`` are the cached files the ``meta`` scenario spreads over."""
    server_cpu = ProcessCpu(server_pid) if server_pid is not None else None
    queue: multiprocessing.Queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_client_process, args=(url, scenario, ids, n, duration, queue, filenames))
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
    parser = argparse.ArgumentParser(prog="python -m perf http-crud", description=__doc__.split("\n")[0],
                                     epilog="--ab: ours and the Node peer in one run, alternating rounds, "
                                            "identical database state per round, ratios ours/Node")
    parser.add_argument("--url", help="the server to load (default http://127.0.0.1:3001; not with --peer node/--ab)")
    parser.add_argument("--peer", choices=("nve", "node"), default="nve",
                        help="node: start the journal's Node stack (perf/peers/node-http) and load it")
    parser.add_argument("--ab", action="store_true",
                        help="start ours and the Node peer, run --rounds alternating rounds, print same-run ratios")
    parser.add_argument("--rounds", type=int, default=3, help="--ab: rounds (each runs both servers)")
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the started server(s) are pinned to (-1: none)")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU the load is pinned to (-1: none)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="Redis of the started server(s) (PostgreSQL: NVE_BENCH_PG's server)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    parser.add_argument("--server-pid", type=int, help="the server's process id, when it runs on this machine: "
                                                       "also report its CPU share and CPU time per request")
    parser.add_argument("--scenarios", default=None,
                        help="comma-separated, of get, list, post, put, meta (metadata cache hit), mix (get, list, "
                             "put, post in turn); default get,list,post,put (--ab: get,list,meta,put,post)")
    add_output_args(parser)
    args = parser.parse_args(argv)
    if args.ab or args.peer == "node":
        if args.url:
            parser.error("--url loads a server you started; --peer node and --ab start their own")
        from perf.ab import NODE_HTTP_PEER
        from perf.servers import node_peer_missing

        if (missing := node_peer_missing(NODE_HTTP_PEER)) is not None:
            raise SystemExit(missing)
    scenarios = (args.scenarios or ("get,list,meta,put,post" if args.ab else "get,list,post,put")).split(",")
    if unknown := set(scenarios) - EXPECT.keys():
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.ab:
        run_ab(args, scenarios)
    elif args.peer == "node":
        run_node(args, scenarios)
    else:
        run_url(args, scenarios)


def run_url(args: argparse.Namespace, scenarios: list[str]) -> None:
    url = args.url or "http://127.0.0.1:3001"
    ids = seed(url, 100)
    rows, raw = [], {}
    for scenario in scenarios:
        run_scenario(url, scenario, ids, args.concurrency, min(2.0, args.duration), args.processes)  # warm-up
        row, raw[scenario] = run_scenario(url, scenario, ids, args.concurrency, args.duration, args.processes,
                                          args.server_pid)
        rows.append(row)
    print(f"http-crud against {url}: concurrency {args.concurrency}, {args.duration:g} s per scenario, "
          f"{args.processes} client process(es)")
    server_columns = ["server_cpu", "server_us_per_req"] if args.server_pid is not None else []
    print_table(rows, ["scenario", "req_per_s", "p50_ms", "p99_ms", "max_ms", "errors", "client_cpu",
                       "client_saturated", *server_columns])
    write_json(args.json, rows)
    if args.plot:
        _plot(args.plot, f"http-crud, concurrency {args.concurrency}", raw)


def _plot(path, title: str, raw: dict[str, Results]) -> None:
    from perf.plot import plot

    # Scenarios run one after another: each one's curve is drawn from its own start.
    plot(path, title, {name: results.latencies for name, results in raw.items()},
         {name: [t - min(results.finished) for t in results.finished] for name, results in raw.items()
          if results.finished})


def _cpus(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """The server CPU and the client CPU (None: not pinned; also when this machine lacks it);
    this process (and so its client processes) moves to the client CPU."""
    available = os.sched_getaffinity(0)
    server = args.server_cpu if args.server_cpu in available else None
    client = args.client_cpu if args.client_cpu in available and args.client_cpu != server else None
    return server, client


SERVER_COLUMNS = ["server_cpu", "server_us_per_req", "pg_us_per_req", "redis_us_per_req", "pg_backends"]


def run_node(args: argparse.Namespace, scenarios: list[str]) -> None:
    from perf.ab import BackendCpu, Server, prime_metadata, redis_pid, reseed
    from perf.servers import JOURNAL_SCHEMA, scratch_database

    server_cpu, client_cpu = _cpus(args)
    rows, raw = [], {}
    with ExitStack() as stack:
        database = stack.enter_context(scratch_database("nve_http_node", schema=JOURNAL_SCHEMA))
        server = Server.node(database, server_cpu, args.redis_url)
        stack.callback(server.stop)
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        filenames = prime_metadata(None, None, args.redis_url) if "meta" in scenarios else ("perf.mp4",)
        meter = BackendCpu(database, redis_pid(args.redis_url))
        ids = reseed(database)
        for scenario in scenarios:
            run_scenario(server.url, scenario, ids, args.concurrency, min(2.0, args.duration), args.processes,
                         filenames=filenames)  # warm-up
            meter.start()
            row, raw[scenario] = run_scenario(server.url, scenario, ids, args.concurrency, args.duration,
                                              args.processes, server.pid, filenames)
            row.update(meter.figures(len(raw[scenario].latencies)))
            rows.append(row)
    print(f"http-crud against the journal's Node stack (perf/peers/node-http, CPU {server_cpu}): concurrency "
          f"{args.concurrency}, {args.duration:g} s per scenario, {args.processes} client process(es)")
    print_table(rows, ["scenario", "req_per_s", "p50_ms", "p99_ms", "max_ms", "errors", "client_cpu",
                       "client_saturated", *SERVER_COLUMNS])
    write_json(args.json, rows)
    if args.plot:
        _plot(args.plot, f"http-crud --peer node, concurrency {args.concurrency}", raw)


def _ratio(a: object, b: object) -> float | None:
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def run_ab(args: argparse.Namespace, scenarios: list[str]) -> None:
    from perf.ab import BackendCpu, Server, data_directory, prime_metadata, redis_pid, reseed
    from perf.servers import JOURNAL_SCHEMA, scratch_database

    server_cpu, client_cpu = _cpus(args)
    rows: list[dict[str, object]] = []
    raw: dict[str, Results] = {}
    with ExitStack() as stack:
        ours_db = stack.enter_context(scratch_database("nve_http_ours", migrate=True))
        node_db = stack.enter_context(scratch_database("nve_http_node", schema=JOURNAL_SCHEMA))
        data_dir = stack.enter_context(data_directory())
        ours = Server.ours(ours_db, server_cpu, args.redis_url, data_dir)
        stack.callback(ours.stop)
        node = Server.node(node_db, server_cpu, args.redis_url)
        stack.callback(node.stop)
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        filenames = prime_metadata(ours, data_dir, args.redis_url) if "meta" in scenarios else ("perf.mp4",)
        redis = redis_pid(args.redis_url)
        meters = {server.name: BackendCpu(server.database, redis) for server in (ours, node)}
        for server in (ours, node):  # warm-up: JIT, pools and caches, on the state every round starts from
            ids = reseed(server.database)
            for scenario in scenarios:
                run_scenario(server.url, scenario, ids, args.concurrency, min(2.0, args.duration), args.processes,
                             filenames=filenames)
        for index in range(args.rounds):
            for server in ((ours, node) if index % 2 == 0 else (node, ours)):
                ids = reseed(server.database)
                for scenario in scenarios:
                    meter = meters[server.name]
                    meter.start()
                    row, results = run_scenario(server.url, scenario, ids, args.concurrency, args.duration,
                                                args.processes, server.pid, filenames)
                    row.update(meter.figures(len(results.latencies)))
                    rows.append({"round": index + 1, "server": server.name, **row})
                    merged = raw.setdefault(f"{server.name} {scenario}", Results())
                    merged.latencies += results.latencies
    by_key = {(row["round"], row["server"], row["scenario"]): row for row in rows}
    ratios = []
    for scenario in scenarios:
        for index in range(1, args.rounds + 1):
            a, b = by_key[(index, "ours", scenario)], by_key[(index, "node", scenario)]
            ratios.append({
                "scenario": scenario, "round": index, "ours_req_per_s": a["req_per_s"],
                "node_req_per_s": b["req_per_s"], "ratio": _ratio(a["req_per_s"], b["req_per_s"]),
                "ours_p99_ms": a["p99_ms"], "node_p99_ms": b["p99_ms"],
                "ours_pg_us": a["pg_us_per_req"], "node_pg_us": b["pg_us_per_req"],
                "ours_redis_us": a["redis_us_per_req"], "node_redis_us": b["redis_us_per_req"],
                "ours_srv_us": a["server_us_per_req"], "node_srv_us": b["server_us_per_req"],
                "errors": a["errors"] + b["errors"],  # type: ignore[operator]
                "client_saturated": bool(a["client_saturated"] or b["client_saturated"])})
    print(f"http-crud A/B, ours vs the journal's Node stack: servers on CPU {server_cpu}, load on CPU {client_cpu}, "
          f"concurrency {args.concurrency}, {args.rounds} round(s) x {args.duration:g} s per scenario and server, "
          "order alternating, the projects table reseeded with the same 100 rows before each turn")
    print_table(rows, ["round", "server", "scenario", "req_per_s", "p50_ms", "p99_ms", "errors", "client_cpu",
                       *SERVER_COLUMNS])
    print("\nsame-run ratios ours/Node (req/s), p99 in ms, CPU us per request of PostgreSQL backends, "
          "redis-server and the server process:")
    print_table(ratios, ["scenario", "round", "ours_req_per_s", "node_req_per_s", "ratio", "ours_p99_ms",
                         "node_p99_ms", "ours_pg_us", "node_pg_us", "ours_redis_us", "node_redis_us", "ours_srv_us",
                         "node_srv_us"])
    write_json(args.json, {"rows": rows, "ratios": ratios})
    if args.plot:
        from perf.plot import plot

        plot(args.plot, f"http-crud A/B, concurrency {args.concurrency}, {args.rounds} round(s)",
             {name: results.latencies for name, results in raw.items()})


if __name__ == "__main__":
    main()
