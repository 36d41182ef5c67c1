"""Percentiles, the client's CPU share, table printing and the output flags shared by every perf scenario."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

SATURATED = 0.9
"""Client CPU share of wall time above which the client, not the server, sets the pace."""


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def summarize(latencies: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max in milliseconds of latencies in seconds."""
    ordered = sorted(latencies)
    return {"p50_ms": percentile(ordered, 0.50) * 1000, "p99_ms": percentile(ordered, 0.99) * 1000,
            "max_ms": (ordered[-1] * 1000) if ordered else float("nan")}


class CpuMeter:
    """This process's CPU time as a share of the wall time since it was made (or :meth:`reset`)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def share(self) -> float:
        wall = time.perf_counter() - self._wall
        return (time.process_time() - self._cpu) / wall if wall > 0 else 0.0


class ProcessCpu:
    """Another local process's CPU time (user + system, from ``/proc/PID/stat``) since it was made.

    The server's CPU per request is a steadier figure than its requests per second on a
    shared machine: other loads stretch the wall clock, much less the work each request costs.
    """

    def __init__(self, pid: int) -> None:
        self._path = Path(f"/proc/{pid}/stat")
        self._ticks = os.sysconf("SC_CLK_TCK")
        self.reset()

    def _seconds(self) -> float:
        # The command name (field 2) may hold spaces; utime and stime are fields 14 and 15.
        fields = self._path.read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / self._ticks

    def reset(self) -> None:
        self._cpu, self._wall = self._seconds(), time.perf_counter()

    def figures(self, requests: int) -> dict[str, float]:
        """The process's CPU share of wall time (percent) and its CPU microseconds per request."""
        cpu, wall = self._seconds() - self._cpu, time.perf_counter() - self._wall
        return {"server_cpu": round(100 * cpu / wall) if wall > 0 else 0.0,
                "server_us_per_req": 1e6 * cpu / requests if requests else float("nan")}


def shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` as evenly as whole numbers go (connections over client processes)."""
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def own_cpu() -> int:
    """The CPU this process's load is counted on by :func:`per_cpu` (a client process is
    pinned to one; an unpinned one is counted on the lowest it may use)."""
    return min(os.sched_getaffinity(0))


def per_cpu(loads: Iterable[tuple[int, float]]) -> list[float]:
    """(CPU, share) of each client process -> the total share of each CPU: two processes
    pinned to one CPU at 48 % each have saturated it."""
    totals: dict[int, float] = {}
    for cpu, share in loads:
        totals[cpu] = totals.get(cpu, 0.0) + share
    return list(totals.values())


def client_load(shares: Iterable[float]) -> dict[str, object]:
    """The busiest of ``shares`` (client processes, or client CPUs by :func:`per_cpu`) in percent,
    and whether it saturated: if it did, the
    figures include the client's own backlog and are an upper bound on the server's."""
    busiest = max(shares, default=0.0)
    return {"client_cpu": round(busiest * 100), "client_saturated": busiest > SATURATED}


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, help="also write the results here (JSON)")
    parser.add_argument("--plot", type=Path, help="also draw a PNG here (latency CDF, throughput over time); "
                                                  "needs matplotlib (the perf extra)")


def print_table(rows: list[dict[str, object]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(widths[c]) for c in columns))


def write_json(path: Path | None, payload: object) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    return "" if value is None else str(value)
