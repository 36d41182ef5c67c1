"""``nve apikey create|list|revoke`` against a real database."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[2]


def _nve(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", "--log-level", "WARNING", "apikey", *args],
                          cwd=ROOT, env={**os.environ, "DATABASE_URL": dsn}, capture_output=True, text=True,
                          timeout=60)


async def test_create_list_revoke(pg_dsn: str) -> None:
    created = _nve(pg_dsn, "create", "acme", "--label", "render farm")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("nve_") and len(key) == 47
    assert "not shown again" in created.stderr

    listed = [json.loads(line) for line in _nve(pg_dsn, "list").stdout.splitlines()]
    assert [(k["tenant"], k["label"], k["prefix"], k["revokedAt"]) for k in listed] == [
        ("acme", "render farm", key[:12], None)]

    connection = await asyncpg.connect(pg_dsn)
    try:
        stored = await connection.fetchrow("SELECT key_hash, prefix FROM api_keys")
        assert bytes(stored["key_hash"]) == hashlib.sha256(key.encode()).digest()  # the key itself is not kept
    finally:
        await connection.close()

    revoked = _nve(pg_dsn, "revoke", str(listed[0]["id"]))
    assert revoked.returncode == 0 and "revoked key" in revoked.stdout
    assert _nve(pg_dsn, "revoke", str(listed[0]["id"])).returncode == 1
    assert json.loads(_nve(pg_dsn, "list").stdout)["revokedAt"] is not None


def test_an_invalid_tenant_is_refused(pg_dsn: str) -> None:
    refused = _nve(pg_dsn, "create", "../etc")
    assert refused.returncode == 2 and "tenant name" in refused.stderr
