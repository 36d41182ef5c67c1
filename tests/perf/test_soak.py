"""The soak's measurements and its verdict, apart from a run.

``/proc`` readings (perf/proctree.py) are checked against processes made here for the
purpose: a tree of known shape, memory and sockets. The verdict (perf/soak.py ``growth``
and ``judge``) is fed synthetic samples: a flat series with warm-up and spikes must pass,
a steady leak must fail, and each of the other checks must fail on its own cause. The
end-to-end run is in test_perf_smoke.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from perf.proctree import listening_pid, sample_tree
from perf.soak import growth, judge
from tests.conftest import ADMIN_DSN, PG_PORT

DURATION = 600.0
TIMES = [t * 30.0 for t in range(21)]  # a sample every 30 s over 10 minutes

TREE = """
import socket, subprocess, sys, time
ballast = bytearray(64 * 2**20)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1  # touched, so resident
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
print(listener.getsockname()[1], child.pid, flush=True)
time.sleep(60)
"""


@pytest.fixture
def tree() -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """A process holding 64 MiB, with one child and a listening socket: (process, port, child pid)."""
    process = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port, child = (int(field) for field in process.stdout.readline().split())
    yield process, port, child
    os.kill(child, 9)
    process.kill()
    process.wait()


def test_the_tree_is_the_process_and_its_descendants(tree: tuple[subprocess.Popen[str], int, int]) -> None:
    process, port, child = tree
    sample = sample_tree(process.pid, PG_PORT)
    assert sample.pids == {process.pid, child}
    assert sample.processes == 2
    assert sample.main_rss_mib >= 64, "the ballast is resident"
    assert sample.rss_mib > sample.main_rss_mib, "the child's resident set is added"
    assert listening_pid(port) == process.pid
    assert listening_pid(1) is None


async def test_fds_and_postgresql_connections_are_counted() -> None:
    """Opened here, in this process's own tree: the counts move by exactly what was opened."""
    before = sample_tree(os.getpid(), PG_PORT)
    with tempfile.TemporaryDirectory() as directory:
        files = [open(Path(directory) / str(index), "w") for index in range(10)]
        with_files = sample_tree(os.getpid(), PG_PORT)
        for file in files:
            file.close()
    assert with_files.fds - before.fds == 10
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        connected = sample_tree(os.getpid(), PG_PORT)
    finally:
        await connection.close()
    assert connected.pg_connections - before.pg_connections == 1
    assert sample_tree(os.getpid(), PG_PORT).pg_connections == before.pg_connections


def samples(rss: Callable[[float], float], main: Callable[[float], float] | None = None,
            fds: Callable[[float], float] = lambda t: 1000.0) -> list[dict[str, Any]]:
    return [{"t_s": t, "rss_mib": rss(t), "main_mib": (main or rss)(t), "fds": fds(t)} for t in TIMES]


def flat(t: float) -> float:
    """200 MiB after a warm-up ramp in the first quarter, +-2 MiB of noise, and one spike of
    60 MiB in the last quarter (a worker caught mid-job)."""
    if t < DURATION / 4:
        return 150 + 50 * t / (DURATION / 4)
    return 200 + (2 if int(t / 30) % 2 else -2) + (60 if t == 510 else 0)


def leak(t: float) -> float:
    return 200 + t * 0.1  # 6 MiB a minute


def document(series: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """A finished run's document as summarize_run makes it: the memory figures of ``series``,
    and no errors, every job done, every final delivered unless ``overrides`` says otherwise."""
    doc = {
        "memory": {key: growth(series, key, DURATION) for key in ("rss_mib", "main_mib", "fds")},
        "errors": {"crud": 0, "total": 0},
        "jobs": {"posted": 1200, "done": 1200, "failed": 0, "unfinished": 0},
        "finals": {"delivered": 1_200_000, "expected": 1_200_000, "operations_off": 0, "followers_off": 0},
    }
    doc.update(overrides)
    return doc


def failing(doc: dict[str, Any]) -> set[str]:
    return {name for name, check in judge(doc, 16.0, 5.0, 16.0).items() if not check["ok"]}


def test_warm_up_noise_and_spikes_are_not_growth() -> None:
    moved = growth(samples(flat), "rss_mib", DURATION)
    assert moved["measured"]
    assert abs(moved["growth"]) <= 2 and moved["baseline"] == pytest.approx(200, abs=2)
    assert failing(document(samples(flat))) == set()


def test_a_steady_leak_fails_with_its_size_and_slope() -> None:
    moved = growth(samples(leak), "rss_mib", DURATION)
    # Second quarter: t = 150..270 s, median 210 s -> 221 MiB; last: t = 450..600 s, median 525 s -> 252.5 MiB.
    assert moved["baseline"] == pytest.approx(221) and moved["final"] == pytest.approx(252.5)
    assert moved["growth"] == pytest.approx(31.5) and moved["growth_pct"] == pytest.approx(31.5 / 221 * 100)
    assert moved["slope_per_min"] == pytest.approx(6.0)
    assert failing(document(samples(leak))) == {"rss_mib", "main_mib"}
    assert failing(document(samples(leak, main=flat))) == {"rss_mib"}, "a worker's leak alone fails too"


def test_growth_is_allowed_up_to_the_larger_of_mib_and_percent() -> None:
    big = samples(lambda t: 1000 + t * 0.1)  # +31.5 MiB on a ~1 GiB baseline: 3 %, under 5 %
    assert failing(document(big)) == set()
    assert failing(document(samples(lambda t: 100 + t * 0.06))) == {"rss_mib", "main_mib"}  # +18.9 MiB, > 16


def test_open_fds_growing_fail() -> None:
    assert failing(document(samples(flat, fds=lambda t: 1000 + t / 10))) == {"fds"}


def test_too_few_samples_are_not_judged() -> None:
    short = [{"t_s": t, "rss_mib": leak(t * 100), "main_mib": 80.0, "fds": 10.0} for t in (0.0, 1.0, 2.0, 3.0)]
    assert growth(short, "rss_mib", 4.0) == {"measured": False}
    checks = judge(document(short), 16.0, 5.0, 16.0)
    assert checks["rss_mib"]["ok"] and "not measured" in checks["rss_mib"]["text"]


def test_errors_unfinished_jobs_and_missing_finals_each_fail() -> None:
    series = samples(flat)
    assert failing(document(series, errors={"crud": 1, "total": 1})) == {"errors"}
    assert failing(document(series, jobs={"posted": 1200, "done": 1199, "failed": 1, "unfinished": 0})) == {"jobs"}
    assert failing(document(series, jobs={"posted": 0, "done": 0, "failed": 0, "unfinished": 0})) == {"jobs"}
    short = {"delivered": 1_199_999, "expected": 1_200_000, "operations_off": 1, "followers_off": 1}
    assert failing(document(series, finals=short)) == {"finals"}
    swapped = {"delivered": 1_200_000, "expected": 1_200_000, "operations_off": 0, "followers_off": 2}
    assert failing(document(series, finals=swapped)) == {"finals"}, "one follower's double hides another's miss"
