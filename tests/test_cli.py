"""``nve`` as a user runs it: the embedded PostgreSQL default, persistence, SIGTERM, migrate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.conftest import free_port

NVE = [sys.executable, "-m", "server.cli"]
DB_VARS = ("DATABASE_URL", "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DB_VARS}
    env.update(REDIS_URL="redis://127.0.0.1:1/0", NVE_WORKERS="0", **extra)
    return env


def start_serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([*NVE, "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--data-dir", str(data_dir)], env=clean_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("nve serve did not become ready")


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def postgres_running_in(pgdata: Path) -> bool:
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
                return True
        except psutil.Error:
            continue
    return False


def test_embedded_postgres_boots_persists_and_stops(tmp_path: Path):
    data_dir = tmp_path / "data"
    port = free_port()
    server = start_serve(data_dir, port)
    try:
        created = httpx.post(f"http://127.0.0.1:{port}/api/projects", json={
            "name": "survives restarts", "videoFilename": "a.mp4", "videoUrl": "/videos/a.mp4"})
        assert created.status_code == 201
        project_id = created.json()["id"]
    finally:
        assert stop(server) == 0
    assert not postgres_running_in(data_dir / "pgdata")
    assert (data_dir / "pgdata" / "PG_VERSION").exists()

    server = start_serve(data_dir, port)
    try:
        again = httpx.get(f"http://127.0.0.1:{port}/api/projects/{project_id}")
        assert again.status_code == 200 and again.json()["name"] == "survives restarts"
    finally:
        assert stop(server) == 0


def test_migrate_command_against_a_configured_database(pg_dsn: str):
    env = clean_env(DATABASE_URL=pg_dsn)
    first = subprocess.run([*NVE, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "001_initial_schema" in first.stdout
    second = subprocess.run([*NVE, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "up to date" in second.stdout
