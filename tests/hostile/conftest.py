"""Fixtures for the hostile-input tests.

Schemathesis calls the API with a blocking client (requests) from inside a synchronous
Hypothesis test, so the server under it cannot share the test's event loop:
``threaded_server`` runs one (started by the usual ``start_server`` factory: real
PostgreSQL, the private Redis) on an event loop of its own thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop

from core.media.pool import MediaPool

HIGH_LIMIT = 1_000_000
"""Rate limits no run reaches: a 429 would hide what the request itself would have got."""
START_TIMEOUT = 60.0


class ThreadedServer:
    """A running server (``server.cli.serve.Running``) served by a loop on its own thread."""

    def __init__(self, running: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.running = running
        self.loop = loop

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.running.port}"

    @property
    def app(self) -> Any:
        return self.running.app

    def call(self, coroutine: Any) -> Any:
        """Run ``coroutine`` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(START_TIMEOUT)


@pytest.fixture
def threaded_server(start_server, redis_url: str, shared_pool: MediaPool) -> Iterator[ThreadedServer]:
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="threaded-server", daemon=True)
    thread.start()
    try:
        running = asyncio.run_coroutine_threadsafe(
            start_server(redis_url=redis_url, rate_limit_writes=HIGH_LIMIT, rate_limit_uploads=HIGH_LIMIT),
            loop).result(START_TIMEOUT)
        running.app.media_pool = shared_pool  # warm already; the app's own stays cold
        server = ThreadedServer(running, loop)
        yield server
        # Stopped here, on its own loop; start_server's teardown then finds it stopped.
        server.call(running.stop())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT)
        loop.close()
