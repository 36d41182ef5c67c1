"""Fixtures of the fault tests: a PostgreSQL of their own; the job and kv tests' clips and servers.

Each fault is real: a TCP proxy that goes silent, a PostgreSQL that is stopped and
started, a Redis that is killed, a filesystem that fills up, a server killed with
SIGKILL. Leases and polls are the job tests' short ones (tests/jobs/conftest.py), so a
lost worker is noticed within a second or two.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import free_port
from tests.faults.postgres import PrivatePostgres
from tests.jobs.conftest import clips, media_dir, slow_clip  # noqa: F401  (fixtures, shared)
from tests.kv.conftest import kv_server_factory  # noqa: F401  (a fixture, shared)


@pytest.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A running PostgreSQL that only this test uses, removed afterwards."""
    server = PrivatePostgres(free_port())
    try:
        await server.create()
        yield server
    finally:
        await server.destroy()
