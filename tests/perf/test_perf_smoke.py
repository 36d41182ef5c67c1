"""Every load scenario of ``python -m perf``, in its smallest form, end to end.

Not a benchmark (no figure is asserted): each scenario runs for about a second as
``python -m perf <scenario> --json --plot`` against a real server, so that the harness
cannot rot unnoticed. Checked: it exits 0, its JSON has the expected keys and no
errors, and its PNG was drawn.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import ADMIN_DSN

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


async def run_perf(tmp_path: Path, scenario: str, *args: str) -> object:
    """``python -m perf scenario args --json --plot``; its JSON, after checking its exit and PNG."""
    out, png = tmp_path / f"{scenario}.json", tmp_path / f"{scenario}.png"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "perf", scenario, *args, "--json", str(out), "--plot", str(png),
        cwd=ROOT, env={**os.environ, "NVE_BENCH_PG": ADMIN_DSN, "NVE_TEST_PG": ADMIN_DSN},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, output.decode(errors="replace")[-3000:]
    assert png.read_bytes()[:8] == PNG, f"{scenario} drew no PNG"
    return json.loads(out.read_text())


def check_rows(rows: object, keys: set[str]) -> list[dict]:
    assert isinstance(rows, list) and rows
    for row in rows:
        assert keys <= row.keys(), keys - row.keys()
        assert not row.get("errors"), row
    return rows


async def test_http_crud(start_server, tmp_path: Path) -> None:
    server = await start_server()
    rows = check_rows(await run_perf(tmp_path, "http-crud", "--url", f"http://127.0.0.1:{server.port}",
                                     "--concurrency", "4", "--duration", "0.3", "--scenarios", "get,mix"),
                      {"scenario", "requests", "req_per_s", "p50_ms", "p99_ms", "errors", "client_cpu",
                       "client_saturated"})
    assert all(row["requests"] > 0 for row in rows)


CRUD_SCENARIOS = ("get", "list", "meta", "put", "post")
SERVER_CPU_KEYS = {"server_us_per_req", "pg_us_per_req", "redis_us_per_req", "pg_backends"}


async def test_http_crud_peer_node(redis_url: str, tmp_path: Path) -> None:
    """The journal's Node stack (perf/peers/node-http, installed by tests/setup.sh) on a scratch
    database nve migrated: every scenario answered, PostgreSQL CPU measured for the database ones."""
    rows = check_rows(await run_perf(tmp_path, "http-crud", "--peer", "node", "--concurrency", "4", "--duration",
                                     "0.3", "--scenarios", ",".join(CRUD_SCENARIOS), "--redis-url", redis_url),
                      {"scenario", "requests", "req_per_s", "p99_ms", "errors", "client_saturated", *SERVER_CPU_KEYS})
    assert [row["scenario"] for row in rows] == list(CRUD_SCENARIOS)
    for row in rows:
        assert row["requests"] > 0 and row["pg_backends"] >= 1, row
        assert row["pg_us_per_req"] is not None and row["pg_us_per_req"] >= 0, row
    assert all(row["pg_us_per_req"] > 0 for row in rows if row["scenario"] in ("put", "post")), rows


async def test_http_crud_ab(redis_url: str, tmp_path: Path) -> None:
    """``http-crud --ab``: both servers, two rounds in alternating order, a ratio per scenario and round."""
    document = await run_perf(tmp_path, "http-crud", "--ab", "--rounds", "2", "--concurrency", "4", "--duration",
                              "0.3", "--redis-url", redis_url)
    assert isinstance(document, dict)
    rows = check_rows(document["rows"], {"round", "server", "scenario", "requests", "req_per_s", "p99_ms",
                                         *SERVER_CPU_KEYS})
    order = [(row["round"], row["server"]) for row in rows if row["scenario"] == "get"]
    assert order == [(1, "ours"), (1, "node"), (2, "node"), (2, "ours")], order
    assert all(row["requests"] > 0 for row in rows)
    ratios = check_rows(document["ratios"], {"scenario", "round", "ratio", "ours_p99_ms", "node_p99_ms",
                                             "ours_pg_us", "node_pg_us", "ours_redis_us", "node_redis_us"})
    assert sorted((row["scenario"], row["round"]) for row in ratios) == sorted(
        (scenario, index) for scenario in CRUD_SCENARIOS for index in (1, 2))
    assert all(row["ratio"] > 0 for row in ratios), ratios


async def test_ws_fanout(redis_url: str, tmp_path: Path) -> None:
    [row] = check_rows(await run_perf(tmp_path, "ws-fanout", "--clients", "20", "--count", "5", "--processes", "1",
                                      "--server-cpu", "-1", "--redis-url", redis_url),
                       {"clients", "delivered", "expected", "p50_ms", "p99_ms", "ping_p50_ms", "server_cpu_ms",
                        "server_us_per_msg", "client_cpu", "client_saturated"})
    assert row["delivered"] == row["expected"] == 100
    assert row["server_cpu_ms"] >= 0, row


async def test_ws_fanout_floor(redis_url: str, tmp_path: Path) -> None:
    """``ws-fanout --floor``: the server's round and the bare-write floor's, and their same-run ratio."""
    document = await run_perf(tmp_path, "ws-fanout", "--floor", "--clients", "20", "--count", "5", "--processes",
                              "1", "--server-cpu", "-1", "--redis-url", redis_url)
    assert isinstance(document, dict)
    rows = check_rows(document["rows"], {"server", "clients", "p50_ms", "p99_ms"})
    assert [row["server"] for row in rows] == ["nve", "floor"]
    assert rows[1]["received"] == 20 * 5, rows
    [ratio] = check_rows(document["ratios"], {"clients", "floor_p50_ms", "floor_p99_ms", "nve_p99_ms",
                                              "nve_floor_p99", "lost"})
    assert ratio["nve_floor_p99"] > 0 and ratio["lost"] == 0, ratio


async def test_ws_rtt(redis_url: str, tmp_path: Path) -> None:
    [row] = check_rows(await run_perf(tmp_path, "ws-rtt", "--clients", "20", "--processes", "1", "--duration",
                                      "0.5", "--server-cpu", "-1", "--redis-url", redis_url),
                       {"clients", "pings", "p50_ms", "p99_ms", "errors", "client_cpu", "client_saturated"})
    assert row["clients"] == 20 and row["pings"] > 10


async def test_ws_floor(tmp_path: Path) -> None:
    rows = check_rows(await run_perf(tmp_path, "ws-floor", "--clients", "20,40", "--passes", "3", "--processes", "1",
                                     "--server-cpu", "-1"),
                      {"clients", "received", "p50_ms", "p99_ms", "us_per_write_p50", "us_per_write_min",
                       "sweep_ms_p50", "sweep_ms_min", "queued", "client_cpu", "client_saturated"})
    assert [row["clients"] for row in rows] == [20, 40]
    for row in rows:
        # Every write read and stamped: the receive latency is ws-fanout's quantity, from the pass's start.
        assert row["received"] == row["clients"] * 3, row
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"], row
        assert 0 < row["us_per_write_min"] <= row["us_per_write_p50"], row
        assert 0 < row["sweep_ms_min"] <= row["sweep_ms_p50"], row
        assert row["queued"] == 0, row


async def test_cache(tmp_path: Path) -> None:
    document = await run_perf(tmp_path, "cache", "--concurrency", "4", "--duration", "0.3", "--files", "10",
                              "--hot", "5", "--zipf-requests", "100")
    check_rows(document["rows"], {"requests", "req_per_s", "p50_ms", "p99_ms", "errors", "client_saturated"})
    assert document["zipf"]["errors"] == 0 and 0 < document["zipf"]["hit_ratio"] <= 1


async def test_jobs(tmp_path: Path) -> None:
    rows = check_rows(await run_perf(tmp_path, "jobs", "--dsn", ADMIN_DSN, "--jobs", "2", "--workers", "1",
                                     "--clip-seconds", "2"),
                      {"workers", "jobs", "metric", "p50_ms"})
    assert {row["metric"] for row in rows} == {"pickup (idle)", "wait", "run", "total", "burst wall"}
    assert "client_saturated" in rows[-1]


async def test_upload(tmp_path: Path) -> None:
    rows = check_rows(await run_perf(tmp_path, "upload", "--mb", "1", "--runs", "1"),
                      {"mode", "mb_per_s", "seconds", "client_cpu", "client_saturated"})
    assert [row["mode"] for row in rows] == ["multipart", "tus", "tus+sha1", "tus-8MiB"]


async def test_mixed(start_server, tmp_path: Path) -> None:
    """Against a server by URL (not one of its own): one without the bench hook, so the WebSocket
    latency comes from the jobs' final messages alone."""
    server = await start_server(workers=1)
    document = await run_perf(tmp_path, "mixed", "--url", f"http://127.0.0.1:{server.port}", "--followers", "50",
                              "--processes", "1", "--concurrency", "4", "--jobs", "3", "--duration", "1",
                              "--clip-seconds", "2")
    assert isinstance(document, dict)
    assert {"crud_req_per_s", "crud_p50_ms", "crud_p99_ms", "job_e2e_p50_ms", "job_e2e_p99_ms", "ws_final_p50_ms",
            "ws_final_p99_ms", "ws_progress_p50_ms", "client_cpu", "client_saturated"} <= document.keys()
    assert document["errors"] == 0, document
    assert document["followers"] == 50 and document["jobs"] == 3
    assert document["finals_delivered"] == document["finals_expected"] == 150
    assert document["ws_progress_p50_ms"] is None, "no bench hook without NVE_BENCH=1"
    check_rows(document["rows"], {"metric", "count", "p50_ms", "p99_ms"})


async def test_soak(redis_url: str, tmp_path: Path) -> None:
    """Four seconds on a server of its own (so its process tree is measured from /proc): samples
    carry the tree's memory, fds and PostgreSQL connections, every job is done and every final
    reached every follower once. Memory growth is computed; it is not judged on a run this short
    (warm-up dominates), which the verdict's own unit tests cover."""
    document = await run_perf(tmp_path, "soak", "--clients", "20", "--processes", "1", "--duration", "4",
                              "--sample-every", "0.25", "--crud-rate", "100", "--concurrency", "2",
                              "--job-rate", "3", "--clip-seconds", "2", "--drain", "30", "--server-cpu", "-1",
                              "--redis-url", redis_url, "--max-growth-mib", "100000", "--max-fd-growth", "100000")
    assert isinstance(document, dict)
    assert document["verdict"]["ok"], document["verdict"]
    assert document["errors"]["total"] == 0, document["errors"]
    jobs = document["jobs"]
    assert jobs["posted"] >= 6 and jobs["done"] == jobs["posted"], jobs
    finals = document["finals"]
    assert finals["delivered"] == finals["expected"] == 20 * jobs["posted"], finals
    assert document["memory"]["rss_mib"]["measured"] and document["memory"]["main_mib"]["measured"]
    samples = document["samples"]
    assert len(samples) >= 16
    for sample in samples:
        assert sample["rss_mib"] > sample["main_mib"] > 0 and sample["procs"] >= 2, sample  # server + a worker
        assert sample["pg"] >= 2 and sample["fds"] > 20, sample  # pool + LISTEN; 20 followers' sockets
        assert sample["ws"] == 20 and sample["ws_srv"] == 21, sample  # the followers, and the tracker
    assert samples[-1]["crud_done"] == sum(row["count"] for row in document["rows"] if row["metric"].startswith("crud"))
    check_rows(document["rows"], {"metric", "count", "p50_ms", "p99_ms"})


async def test_ingest(tmp_path: Path) -> None:
    rows = check_rows(await run_perf(tmp_path, "ingest", "--seconds", "1", "--size", "160x90", "--short-side", "60",
                                     "--runs", "1", "--dir", str(tmp_path)),
                      {"operation", "ours_ms", "cli_ms", "ours_over_cli"})
    assert [row["operation"] for row in rows] == ["probe (deep)", "proxy 106x60, 1 thread"]
    assert rows[0]["ms_per_media_minute"] > 0
    assert all(rows[1][key] > 0 for key in ("x_realtime", "cli_x_realtime", "x_realtime_per_cpu",
                                            "cli_x_realtime_per_cpu"))


async def test_ws_fanout_against_the_node_peer_in_the_same_run(redis_url: str, tmp_path: Path) -> None:
    result = await run_perf(tmp_path, "ws-fanout", "--peer", "both", "--clients", "20", "--count", "5",
                            "--rounds", "2", "--warmup", "10", "--processes", "1", "--server-cpu", "-1",
                            "--redis-url", redis_url)
    assert isinstance(result, dict)
    rows = check_rows(result["rows"], {"server", "round", "clients", "delivered", "expected", "p99_ms"})
    # Two rounds per server, the order alternating: nve first, then node first.
    assert [(row["server"], row["round"]) for row in rows] == [("nve", 1), ("node", 1), ("node", 2), ("nve", 2)]
    assert all(row["delivered"] == row["expected"] == 100 for row in rows)
    [ratio] = result["ratios"]
    assert ratio["clients"] == 20 and ratio["lost"] == 0 and ratio["ratio_p99"] > 0


async def test_webhooks(tmp_path: Path) -> None:
    rows = check_rows(await run_perf(tmp_path, "webhooks", "--jobs", "5", "--endpoints", "1", "--rounds", "1"),
                      {"endpoints", "jobs", "deliveries", "metric", "p50_ms", "p99_ms", "per_s", "client_cpu"})
    assert {row["metric"] for row in rows} == {"finished_at -> arrival", "commit -> arrival"}
    assert all(row["deliveries"] == 5 for row in rows)


def test_every_load_scenario_is_covered() -> None:
    """A scenario added to ``python -m perf`` needs a smoke test here (the media micro-benchmarks
    and the cluster launcher are not load scenarios: they run for minutes or until Ctrl-C)."""
    from perf.__main__ import SCENARIOS

    tested = {name.removeprefix("test_").replace("_", "-") for name in globals() if name.startswith("test_")}
    assert set(SCENARIOS) - {"media", "render", "smart-render", "chunk-render", "cluster"} <= tested


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_scale(redis_url: str, tmp_path: Path) -> None:
    """``perf scale`` at a toy size: every scenario of ours measured on the small state, then again
    after the large one is loaded and churned in the same database; the table says which figures
    are this run's, and the JSON carries both states, their comparison and the table statistics."""
    document = await run_perf(tmp_path, "scale", "--projects", "2000", "--owners", "4", "--sessions", "200",
                              "--jobs", "200", "--churn", "20", "--churn-rows", "100", "--duration", "0.5",
                              "--concurrency", "4", "--server-cpu", "-1", "--autovacuum-wait", "1", "--explain",
                              "--redis-url", redis_url)
    assert isinstance(document, dict)
    assert {"run", "rows", "comparison", "ab", "tables", "explain", "autovacuum", "autovacuum_waited_s",
            "load_seconds", "churn_seconds", "notes"} <= document.keys()
    rows = check_rows(document["rows"], {"state", "server", "scenario", "requests", "req_per_s", "p99_ms",
                                         *SERVER_CPU_KEYS})
    assert [(row["state"], row["scenario"]) for row in rows] == [
        (state, scenario) for state in ("small", "large") for scenario in CRUD_SCENARIOS]
    assert all(row["requests"] > 0 for row in rows)
    comparison = check_rows(document["comparison"], {"server", "scenario", "small_req_per_s", "large_req_per_s",
                                                     "large_over_small", "within_20pct", "small_p99_ms",
                                                     "large_p99_ms", "small_pg_us", "large_pg_us"})
    assert [row["scenario"] for row in comparison] == list(CRUD_SCENARIOS)
    assert all(row["large_over_small"] > 0 for row in comparison)
    churned = document["tables"]["ours after churn"]
    assert churned["n_tup_upd"] >= 20 * 100 and churned["n_dead_tup"] > 0, churned
    assert "projects_pkey" in churned["index_mib"]
    assert {"get", "list (first scan)", "list (again)", "list page 2"} <= document["explain"]["ours"].keys()
    assert document["ab"] == []
