"""Cost against data (#18, "cost must not grow with data"): every ``http-crud`` scenario measured
twice in one run, on the small seeded state and again on the same databases after a large state is
loaded and churned.

    python -m perf scale                                   # ours: 1 000 000 projects, churn 2000 x 100 rows
    python -m perf scale --ab --projects 200000 --churn 5000 --explain
    python -m perf scale --peer node --projects 100000

The same harness as ``http-crud --peer node`` / ``--ab`` (perf/http_crud.py and perf/ab.py: the
servers pinned to ``--server-cpu``, the load to ``--client-cpu``, PostgreSQL and Redis CPU per
request from ``/proc``): ours on a scratch database ``nve migrate`` made, the journal's Node
stack (``--peer node``: it alone; ``--ab``: both, the order alternating between the two states) on
one holding the journal's schema.

1. Small state: the projects table reseeded with the 100 rows ``http-crud`` uses (ids 1..100,
   owner ``local``: the owner of open mode); a warm-up pass, a reseed, then every scenario.
2. Large state, in the same databases: reseeded again, then ``--projects`` projects in all
   (ids from 101 on; ours spread over ``--owners`` owners, ``local`` one of them; the journal's
   schema has no owner column and gets the same rows without it), ``--sessions`` live sessions, and
   in ours ``--jobs`` finished trims; all by server-side ``INSERT ... SELECT FROM generate_series``,
   then ANALYZE (what autovacuum's analyze would have done), and a warm-up pass of every scenario
   (its writes before the churn, so the churned rows are the newest again). Then churn: the
   ``--churn-rows`` rows the scenarios read and write (ids 1..N, the GET/PUT ids) updated ``--churn``
   times each, one UPDATE of all of them per transaction, as our write path does (``version =
   version + 1, updated_at = now()``; the journal's trigger sets updated_at). No VACUUM by hand: the
   run waits (at most ``--autovacuum-wait`` s) for autovacuum to have vacuumed projects after the
   churn, and reports ``pg_stat_user_tables`` (dead tuples, HOT updates, last autovacuum), what holds
   the xmin horizon back (the oldest snapshot's age, sessions idle in a transaction) and the sizes of
   the table and its indexes. A server whose ``autovacuum`` is off is reported as such and not
   waited for; ``--autovacuum-on`` turns it on for the run (then reset), so the churn meets a running
   autovacuum as on a production server, or ``--vacuum`` stands in for it with one plain VACUUM of
   projects (both off by default).
   A read-only warm-up pass, then every scenario again: GET and PUT on the churned ids, ours' list
   paging owner ``local`` (its first page: the 100 churned rows). The journal's list returns every
   row: above ``NODE_LIST_ROWS`` rows it is not put under load (one request is timed instead).

Printed: per server and scenario, req/s small and large and their ratio (the target: within 20 %),
p99 and PostgreSQL CPU per request at both; with ``--ab`` the ratios ours/Node at the large state;
with ``--explain`` the plans (EXPLAIN (ANALYZE, BUFFERS)) after the churn of our GET by id and of our
list as the server sends it (LIMIT 101 for a page of 100: its last row lies past the churned rows'
dead index entries), first and second scan, and of the page after; and of the journal's GET. Every
figure printed was measured in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from perf.httpclient import Results
from perf.stats import add_output_args, print_table, write_json

SCENARIOS = ("get", "list", "meta", "put", "post")
OWNER = "local"
"""The owner of open mode: every request of the harness is this owner's (ids 1..100 are its rows)."""
NODE_LIST_ROWS = 10_000
"""Above this many projects the journal's list (every row, no limit) is timed once, not loaded."""
TARGET = 0.20
"""Every figure within 20 % of itself at the large state (#18)."""
SESSION_DATA = json.dumps({"settings": {"theme": "dark", "autoSave": True}, "recentProjects": [3, 2, 1]})


def _literal(value: object) -> str:
    return "'" + json.dumps(value).replace("'", "''") + "'"


async def _connect(database: str):
    import asyncpg

    from perf.servers import dsn

    return await asyncpg.connect(dsn(database))


async def _fetch(database: str, query: str, *args: object) -> list[Any]:
    connection = await _connect(database)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


def fetch(database: str, query: str, *args: object) -> list[Any]:
    return asyncio.run(_fetch(database, query, *args))


def load_statements(ours: bool, projects: int, owners: int, sessions: int, jobs: int) -> list[str]:
    """The statements that grow a reseeded database (``SEED_ROWS`` projects) to the large state."""
    from perf.ab import SEED_ROWS
    from perf.http_crud import TIMELINE

    owner_column = ", owner" if ours else ""
    owner_value = (f", CASE WHEN i % {owners} = 0 THEN '{OWNER}' ELSE 'tenant:scale-' || (i % {owners}) END"
                   if ours else "")
    # Older than the seeded rows: the churned ones stay the newest (the first page of the list).
    statements = [
        "SET session_replication_role = replica",  # no per-row triggers: the jobs NOTIFY trigger of 003/004
        "SET synchronous_commit = off",
        "INSERT INTO projects (name, video_filename, video_url, timeline_state, created_at, updated_at"
        f"{owner_column}) SELECT 'scale project ' || i, 'scale-' || i || '.mp4', '/videos/scale-' || i || '.mp4', "
        f"{_literal(TIMELINE)}::jsonb, t, t{owner_value} FROM generate_series(1, {max(0, projects - SEED_ROWS)}) AS i, "
        "LATERAL (SELECT now() - interval '1 day' - i * interval '1 second' AS t) AS s",
        "INSERT INTO sessions (id, data, expires_at) "
        f"SELECT 'scale-' || md5(i::text), {_literal(SESSION_DATA)}::jsonb, "
        f"now() + interval '7 days' + i * interval '1 second' FROM generate_series(1, {sessions}) AS i",
    ]
    if ours and jobs:
        owner = f"CASE WHEN i % {owners} = 0 THEN '{OWNER}' ELSE 'tenant:scale-' || (i % {owners}) END"
        statements.append(
            "INSERT INTO jobs (operation_id, operation, params, status, progress, message, result, attempts, owner, "
            "created_at, updated_at, started_at, finished_at) "
            "SELECT 'trim-' || h, 'trim', jsonb_build_object('filename', 'scale-' || i || '.mp4', 'start', 1.0, "
            "'end', 5.0, 'mode', 'copy'), 'done', 100, 'Done', jsonb_build_object('filename', 'trim-' || h || '.mp4', "
            "'url', '/videos/trim-' || h || '.mp4', 'duration', 4.0, 'cut', "
            f"jsonb_build_object('start', 0.96, 'end', 5.0)), 1, {owner}, t - interval '5 seconds', t, "
            f"t - interval '4 seconds', t FROM generate_series(1, {jobs}) AS i, "
            "LATERAL (SELECT md5('scale-job-' || i) AS h, now() - i * interval '1 second' AS t) AS s")
    statements.append("ANALYZE projects, sessions" + (", jobs" if ours else ""))
    return statements


def churn_statement(ours: bool, rows: int, times: int) -> str:
    """``times`` transactions, each one UPDATE of projects 1..``rows`` as a PUT's (a DO block that
    commits per pass: one round trip for all of them)."""
    bump = "version = version + 1, updated_at = now()" if ours else "updated_at = now()"
    return (f"DO $$ BEGIN FOR n IN 1..{times} LOOP "
            f"UPDATE projects SET {bump} WHERE id BETWEEN 1 AND {rows}; COMMIT; END LOOP; END $$")


async def _run_timed(database: str, statements: list[str]) -> float:
    connection = await _connect(database)
    try:
        started = time.perf_counter()
        for statement in statements:
            await connection.execute(statement)
        return time.perf_counter() - started
    finally:
        await connection.close()


async def _gather_timed(jobs: dict[str, tuple[str, list[str]]]) -> dict[str, float]:
    """Each server's statements on its own database, the databases in parallel; seconds each took."""
    seconds = await asyncio.gather(*(_run_timed(database, statements) for database, statements in jobs.values()))
    return dict(zip(jobs, seconds))


def autovacuum_setting(database: str) -> dict[str, object]:
    [row] = fetch(database, "SELECT setting, source, sourcefile FROM pg_settings WHERE name = 'autovacuum'")
    return {"on": row["setting"] == "on", "source": row["sourcefile"] or row["source"]}


def any_database(servers: dict[str, Any]) -> str:
    """A database of the run (every server's is on the one PostgreSQL ``autovacuum`` is set for)."""
    return next(iter(servers.values())).database


@contextmanager
def autovacuum_turned_on() -> Iterator[None]:
    """``autovacuum = on`` for the whole PostgreSQL server while the block runs (ALTER SYSTEM writes
    postgresql.auto.conf, read after every other file), then reset to what the files say."""
    from perf.servers import PG_ADMIN, sql

    sql(PG_ADMIN, "ALTER SYSTEM SET autovacuum = on", "SELECT pg_reload_conf()")
    try:
        time.sleep(1.0)  # the postmaster rereads its configuration on SIGHUP, asynchronously
        yield
    finally:
        sql(PG_ADMIN, "ALTER SYSTEM RESET autovacuum", "SELECT pg_reload_conf()")


def _vacuum_count(database: str) -> int:
    [row] = fetch(database, "SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'projects'")
    return int(row["autovacuum_count"])


def wait_for_autovacuum(databases: dict[str, str], before: dict[str, int], timeout: float) -> dict[str, float | None]:
    """Seconds until autovacuum had vacuumed projects in each database (None: not within ``timeout``)."""
    started = time.monotonic()
    waited: dict[str, float | None] = dict.fromkeys(databases)
    while True:
        for name, database in databases.items():
            if waited[name] is None and _vacuum_count(database) > before[name]:
                waited[name] = round(time.monotonic() - started, 1)
        if all(value is not None for value in waited.values()) or time.monotonic() - started > timeout:
            return waited
        time.sleep(2)


def table_stats(database: str) -> dict[str, object]:
    """projects in ``pg_stat_user_tables``, and the sizes of it and its indexes (MiB)."""
    [row] = fetch(database, """
        SELECT n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd, autovacuum_count, vacuum_count,
               last_autovacuum, last_vacuum, last_autoanalyze, pg_relation_size(relid) AS heap,
               (SELECT count(*) FROM projects) AS rows
        FROM pg_stat_user_tables WHERE relname = 'projects'""")
    indexes = fetch(database, """
        SELECT indexrelname AS name, pg_relation_size(indexrelid) AS size FROM pg_stat_user_indexes
        WHERE relname = 'projects' ORDER BY indexrelname""")
    stats: dict[str, object] = {key: row[key] for key in ("rows", "n_live_tup", "n_dead_tup", "n_tup_upd",
                                                          "n_tup_hot_upd", "autovacuum_count", "vacuum_count")}
    for key in ("last_autovacuum", "last_vacuum", "last_autoanalyze"):
        stats[key] = row[key].isoformat(timespec="seconds") if row[key] is not None else None
    stats["heap_mib"] = round(row["heap"] / 2**20, 1)
    stats["index_mib"] = {index["name"]: round(index["size"] / 2**20, 2) for index in indexes}
    # What holds the xmin horizon back (dead versions no scan may skip and no cleanup may remove):
    # the oldest snapshot of another session of this database, and prepared transactions.
    [holders] = fetch(database, """
        SELECT coalesce(max(age(backend_xmin)), 0) AS xmin_age,
               count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle_in_transaction,
               (SELECT count(*) FROM pg_prepared_xacts) AS prepared
        FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()""")
    stats.update({key: holders[key] for key in ("xmin_age", "idle_in_transaction", "prepared")})
    return stats


def explain(database: str, ours: bool) -> dict[str, list[str]]:
    """EXPLAIN (ANALYZE, BUFFERS) of the GET by id (a churned id) and, for ours, of the list as the
    server sends it for ``?limit=100``: core/projects.py's statements, with LIMIT 101 (one row more
    than the page, to know whether there is a next one). The first page is the 100 churned rows, so
    its 101st row lies past all their dead versions in idx_projects_owner_updated_at_id: the first
    scan visits their heap tuples (and marks the index entries dead), later ones step over them
    until a VACUUM removes them. Then the page after (cursor: the 100th row), which walks the same."""
    if ours:
        from core.projects import _PAGE_AFTER, _PAGE_FIRST, _SELECT

        [cursor] = fetch(database, "SELECT updated_at, id FROM projects WHERE owner = $1 "
                                   "ORDER BY updated_at DESC, id DESC OFFSET 99 LIMIT 1", OWNER)
        first = (_PAGE_FIRST, (101, OWNER))
        statements = {"get": (_SELECT, (1, OWNER)), "list (first scan)": first, "list (again)": first,
                      "list page 2": (_PAGE_AFTER, (101, cursor["updated_at"], cursor["id"], OWNER))}
    else:
        statements = {"get": ("SELECT * FROM projects WHERE id = $1", (1,))}
    plans = {}
    for name, (statement, args) in statements.items():
        rows = fetch(database, "EXPLAIN (ANALYZE, BUFFERS) " + statement, *args)
        plans[name] = [row[0] for row in rows]
    return plans


def time_one_list(url: str) -> dict[str, float]:
    """One GET /api/projects: seconds and MiB (the journal's list, every row)."""
    started = time.perf_counter()
    with urllib.request.urlopen(f"{url}/api/projects", timeout=300) as response:
        size = len(response.read())
    return {"seconds": round(time.perf_counter() - started, 2), "mib": round(size / 2**20, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf scale", description=__doc__.split("\n")[0])
    parser.add_argument("--peer", choices=("nve", "node"), default="nve",
                        help="nve: our server; node: the journal's Node stack (perf/peers/node-http) instead")
    parser.add_argument("--ab", action="store_true", help="both, the order alternating; same-run ratios ours/Node")
    parser.add_argument("--projects", type=int, default=1_000_000, help="projects at the large state, in all")
    parser.add_argument("--owners", type=int, default=10, help="owners the projects spread over (ours), local one")
    parser.add_argument("--sessions", type=int, default=100_000, help="live sessions at the large state")
    parser.add_argument("--jobs", type=int, default=100_000, help="finished trims at the large state (ours)")
    parser.add_argument("--churn", type=int, default=2000, help="updates of each churned row")
    parser.add_argument("--churn-rows", type=int, default=100, help="rows churned: ids 1..N (the GET/PUT ids)")
    parser.add_argument("--autovacuum-wait", type=float, default=240.0,
                        help="seconds to wait at most for autovacuum to vacuum projects after the churn")
    parser.add_argument("--vacuum", action="store_true",
                        help="where the server's autovacuum is off: VACUUM projects once after the churn instead")
    parser.add_argument("--autovacuum-on", action="store_true",
                        help="where the server's autovacuum is off: turn it on for this run (ALTER SYSTEM and a "
                             "reload; reset at the end), so the churn meets the autovacuum a production server runs")
    parser.add_argument("--explain", action="store_true", help="print the plans of GET by id and the list page")
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the servers are pinned to (-1: none)")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU the load is pinned to (-1: none)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario, server and state")
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, of " + ", ".join(SCENARIOS))
    add_output_args(parser)
    args = parser.parse_args(argv)
    scenarios = args.scenarios.split(",")
    if unknown := set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.owners < 1 or args.churn_rows < 1 or args.churn < 0:
        parser.error("--owners and --churn-rows must be at least 1, --churn at least 0")
    names = ("ours", "node") if args.ab else ("node",) if args.peer == "node" else ("ours",)
    if "node" in names:
        from perf.ab import NODE_HTTP_PEER
        from perf.servers import node_peer_missing

        if (missing := node_peer_missing(NODE_HTTP_PEER)) is not None:
            raise SystemExit(missing)
    run(args, names, scenarios)


def run(args: argparse.Namespace, names: tuple[str, ...], scenarios: list[str]) -> None:
    from perf.ab import SEED_ROWS, BackendCpu, Server, data_directory, prime_metadata, redis_pid, reseed
    from perf.http_crud import _cpus, run_scenario
    from perf.servers import JOURNAL_SCHEMA, scratch_database

    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    server_cpu, client_cpu = _cpus(args)
    rows: list[dict[str, object]] = []
    raw: dict[str, Results] = {}
    report: dict[str, Any] = {"tables": {}, "explain": {}, "notes": []}
    with ExitStack() as stack:
        servers: dict[str, Server] = {}
        data_dir = None
        if "ours" in names:
            database = stack.enter_context(scratch_database("nve_scale_ours", migrate=True))
            data_dir = stack.enter_context(data_directory())
            servers["ours"] = Server.ours(database, server_cpu, args.redis_url, data_dir)
            stack.callback(servers["ours"].stop)
        if "node" in names:
            database = stack.enter_context(scratch_database("nve_scale_node", schema=JOURNAL_SCHEMA))
            servers["node"] = Server.node(database, server_cpu, args.redis_url)
            stack.callback(servers["node"].stop)
        if args.autovacuum_on and not autovacuum_setting(any_database(servers))["on"]:
            stack.enter_context(autovacuum_turned_on())
            report["notes"].append("autovacuum was OFF on this PostgreSQL: --autovacuum-on turned it on for the run")
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        filenames = (prime_metadata(servers.get("ours"), data_dir, args.redis_url) if "meta" in scenarios
                     else ("perf.mp4",))
        redis = redis_pid(args.redis_url)
        meters = {name: BackendCpu(server.database, redis) for name, server in servers.items()}

        ids = list(range(1, SEED_ROWS + 1))

        def warm(server: Server, kinds: list[str]) -> None:
            """A pass of ``kinds`` not measured: JIT, pools and caches on this state."""
            for scenario in kinds:
                run_scenario(server.url, scenario, ids, args.concurrency, min(2.0, args.duration), args.processes,
                             filenames=filenames)

        def measure(state: str, server: Server, kinds: list[str]) -> None:
            for scenario in kinds:
                meters[server.name].start()
                row, results = run_scenario(server.url, scenario, ids, args.concurrency, args.duration,
                                            args.processes, server.pid, filenames)
                row.update(meters[server.name].figures(len(results.latencies)))
                rows.append({"state": state, "server": server.name, **row})
                raw[f"{server.name} {state} {scenario}"] = results

        order = list(servers.values())
        for server in order:  # small: warm-up, then the 100 rows reseeded and measured
            reseed(server.database)
            warm(server, scenarios)
            reseed(server.database)
            measure("small", server, scenarios)
            report["tables"][f"{server.name} small"] = table_stats(server.database)

        # The large state, in the same databases: load, a warm-up pass of every scenario (its writes
        # before the churn, so that the churned rows are the newest again: the list's first page), churn.
        setting = autovacuum_setting(order[0].database)
        report["autovacuum"] = setting
        jobs = {name: (server.database, load_statements(name == "ours", args.projects, args.owners, args.sessions,
                                                        args.jobs)) for name, server in servers.items()}
        for server in order:
            reseed(server.database)
        report["load_seconds"] = {k: round(v, 1) for k, v in asyncio.run(_gather_timed(jobs)).items()}
        node_list = None
        kinds = {name: list(scenarios) for name in servers}
        if "node" in servers and "list" in scenarios and args.projects > NODE_LIST_ROWS:
            kinds["node"].remove("list")
            node_list = time_one_list(servers["node"].url)
            report["notes"].append(
                f"node list at the large state not loaded: the journal's list returns every row "
                f"({args.projects:,} projects); one request took {node_list['seconds']} s for {node_list['mib']} MiB")
        for server in reversed(order):  # the other server first this time
            warm(server, kinds[server.name])
        before = {name: _vacuum_count(server.database) for name, server in servers.items()}
        report["churn_seconds"] = {k: round(v, 1) for k, v in asyncio.run(_gather_timed({
            name: (server.database, [churn_statement(name == "ours", args.churn_rows, args.churn)])
            for name, server in servers.items()})).items()}
        for name, server in servers.items():
            report["tables"][f"{name} after churn"] = table_stats(server.database)
        if setting["on"]:
            report["autovacuum_waited_s"] = wait_for_autovacuum(
                {name: server.database for name, server in servers.items()}, before, args.autovacuum_wait)
        else:
            report["autovacuum_waited_s"] = dict.fromkeys(servers)
            report["notes"].append(f"autovacuum is OFF on this PostgreSQL (set in {setting['source']}): it never "
                                   "ran, the dead tuples of the churn stay"
                                   + ("; --vacuum: one VACUUM of projects by hand instead" if args.vacuum else ""))
            if args.vacuum:
                asyncio.run(_gather_timed({name: (server.database, ["VACUUM projects"])
                                           for name, server in servers.items()}))
        for name, server in servers.items():
            report["tables"][f"{name} large, before measuring"] = table_stats(server.database)
            if args.explain:
                report["explain"][name] = explain(server.database, name == "ours")
        for server in reversed(order):  # after the churn, a read-only pass (writes would move the rows read)
            warm(server, [kind for kind in kinds[server.name] if kind not in ("put", "post")])
            measure("large", server, kinds[server.name])
            report["tables"][f"{server.name} large, after measuring"] = table_stats(server.database)

    comparison = _compare(rows, servers_named=list(servers), scenarios=scenarios)
    ab = _ab(rows, scenarios) if len(servers) == 2 else []
    _print(args, started_at, rows, comparison, ab, report, server_cpu, client_cpu)
    write_json(args.json, {
        "run": {"started_at": started_at, "projects": args.projects, "owners": args.owners, "sessions": args.sessions,
                "jobs": args.jobs, "churn": args.churn, "churn_rows": args.churn_rows, "duration": args.duration,
                "concurrency": args.concurrency, "servers": list(servers), "scenarios": scenarios,
                "server_cpu": server_cpu, "client_cpu": client_cpu},
        "rows": rows, "comparison": comparison, "ab": ab, "node_list_once": node_list, **report})
    if args.plot:
        from perf.plot import plot

        plot(args.plot, f"scale: small vs {args.projects:,} projects, churn {args.churn}",
             {name: results.latencies for name, results in raw.items()})


def _compare(rows: list[dict[str, object]], servers_named: list[str], scenarios: list[str]) -> list[dict[str, object]]:
    from perf.http_crud import _ratio

    by_key = {(row["server"], row["state"], row["scenario"]): row for row in rows}
    out = []
    for server in servers_named:
        for scenario in scenarios:
            small = by_key.get((server, "small", scenario))
            large = by_key.get((server, "large", scenario))
            if small is None:
                continue
            ratio = _ratio(large["req_per_s"], small["req_per_s"]) if large else None
            out.append({
                "server": server, "scenario": scenario, "small_req_per_s": small["req_per_s"],
                "large_req_per_s": large["req_per_s"] if large else None, "large_over_small": ratio,
                "within_20pct": None if ratio is None else abs(ratio - 1) <= TARGET,
                "small_p99_ms": small["p99_ms"], "large_p99_ms": large["p99_ms"] if large else None,
                "small_pg_us": small["pg_us_per_req"], "large_pg_us": large["pg_us_per_req"] if large else None,
                "pg_large_over_small": _ratio(large["pg_us_per_req"], small["pg_us_per_req"]) if large else None,
                "small_srv_us": small["server_us_per_req"],
                "large_srv_us": large["server_us_per_req"] if large else None,
                "errors": small["errors"] + (large["errors"] if large else 0),  # type: ignore[operator]
                "client_saturated": bool(small["client_saturated"] or (large and large["client_saturated"]))})
    return out


def _ab(rows: list[dict[str, object]], scenarios: list[str]) -> list[dict[str, object]]:
    """Ours/Node at the large state, the same run."""
    from perf.http_crud import _ratio

    by_key = {(row["server"], row["state"], row["scenario"]): row for row in rows}
    out = []
    for scenario in scenarios:
        for state in ("small", "large"):
            a, b = by_key.get(("ours", state, scenario)), by_key.get(("node", state, scenario))
            if a is None or b is None:
                continue
            out.append({"state": state, "scenario": scenario, "ours_req_per_s": a["req_per_s"],
                        "node_req_per_s": b["req_per_s"], "ratio": _ratio(a["req_per_s"], b["req_per_s"]),
                        "ours_p99_ms": a["p99_ms"], "node_p99_ms": b["p99_ms"],
                        "ours_pg_us": a["pg_us_per_req"], "node_pg_us": b["pg_us_per_req"]})
    return out


def _print(args: argparse.Namespace, started_at: str, rows: list[dict[str, object]],
           comparison: list[dict[str, object]], ab: list[dict[str, object]], report: dict[str, Any],
           server_cpu: int | None, client_cpu: int | None) -> None:
    print(f"perf scale, run started {started_at}: EVERY FIGURE BELOW WAS MEASURED IN THIS RUN (none is quoted "
          f"from another). Servers on CPU {server_cpu}, load on CPU {client_cpu}, concurrency {args.concurrency}, "
          f"{args.duration:g} s per scenario, server and state.")
    print(f"small: 100 projects (reseeded). large, same databases: {args.projects:,} projects ({args.owners} owners "
          f"in ours), {args.sessions:,} sessions, {args.jobs:,} finished jobs (ours), rows 1..{args.churn_rows} "
          f"updated {args.churn:,} times each; loaded in {report['load_seconds']} s, churned in "
          f"{report['churn_seconds']} s; autovacuum {'on' if report['autovacuum']['on'] else 'OFF'}, "
          f"waited for it (s, None: did not run): {report['autovacuum_waited_s']}")
    for note in report["notes"]:
        print("note:", note)
    print()
    print_table(rows, ["state", "server", "scenario", "req_per_s", "p50_ms", "p99_ms", "errors", "client_cpu",
                       "server_us_per_req", "pg_us_per_req", "redis_us_per_req"])
    print(f"\nsmall vs large, this run (target: large/small within {TARGET:.0%}); CPU us per request of the "
          "PostgreSQL backends (pg) and the server process (srv), steadier than req/s on a shared machine:")
    print_table(comparison, ["server", "scenario", "small_req_per_s", "large_req_per_s", "large_over_small",
                             "within_20pct", "small_p99_ms", "large_p99_ms", "small_pg_us", "large_pg_us",
                             "pg_large_over_small", "small_srv_us", "large_srv_us"])
    if ab:
        print("\nours/Node, this run (req/s ratio), p99 ms, PostgreSQL CPU us per request:")
        print_table(ab, ["state", "scenario", "ours_req_per_s", "node_req_per_s", "ratio", "ours_p99_ms",
                         "node_p99_ms", "ours_pg_us", "node_pg_us"])
    print("\nprojects: its rows, pg_stat_user_tables (counters, n_live_tup an estimate), the oldest snapshot's "
          "age and sessions idle in a transaction in its database, sizes (this run):")
    stats = [{"when": when, **{k: v for k, v in table.items() if k != "index_mib"},
              "indexes_mib": " ".join(f"{name}={size}" for name, size in table["index_mib"].items())}
             for when, table in report["tables"].items()]
    print_table(stats, ["when", "rows", "n_live_tup", "n_dead_tup", "n_tup_upd", "n_tup_hot_upd", "autovacuum_count",
                        "last_autovacuum", "vacuum_count", "xmin_age", "idle_in_transaction", "heap_mib",
                        "indexes_mib"])
    for server, plans in report["explain"].items():
        for name, lines in plans.items():
            print(f"\n{server} {name}, EXPLAIN (ANALYZE, BUFFERS) after the churn:")
            print("\n".join("    " + line for line in lines))


if __name__ == "__main__":
    main()
