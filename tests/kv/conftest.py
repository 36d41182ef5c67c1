"""A running server with the Redis services on the test's private Redis and small rate
limits; metadata misses are probed the production way, in the session's warm media pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.kv.connection import RedisConnection
from core.kv.services import RateLimits
from server.http.request import Request
from server.http.response import Response, encode_json, json_response
from server.policy.client import remember_project
from server.policy.ratelimit import enforce_rate_limit

TEST_LIMITS = RateLimits(writes=5, uploads=2, window=2.0)


async def limited(request: Request) -> Response:
    """A test-only route that does what dispatch does for rate-limited routes."""
    await enforce_rate_limit(request)
    return json_response({"ok": True})


async def opened(request: Request) -> Response:
    """A test-only route standing in for the projects handlers' call to remember_project."""
    project_id = request.path_params["id"]
    row = {"id": project_id, "name": f"Project {project_id}", "description": None}
    await remember_project(request, encode_json(row))
    return json_response({"ok": True})


@pytest.fixture
async def kv(redis_url: str) -> AsyncIterator[RedisConnection]:
    """A RedisConnection to the private Redis."""
    connection = RedisConnection(redis_url)
    yield connection
    await connection.close()


@pytest.fixture
def kv_server_factory(start_server, redis_url: str, clip: Path, shared_pool):
    """``await kv_server_factory(**settings)``: a server using the private Redis.

    The media directory holds ``clip.mp4`` (the clip) and ``notes.txt`` (not a video).
    """

    async def factory(**overrides: object):
        settings: dict[str, object] = {
            "redis_url": redis_url, "rate_limit_writes": TEST_LIMITS.writes,
            "rate_limit_uploads": TEST_LIMITS.uploads, "rate_limit_window": TEST_LIMITS.window}
        server = await start_server(**{**settings, **overrides})
        app = server.app
        app.media_pool = shared_pool  # warm already: misses probe without a cold start
        server.router.add("POST", "/api/_test/limited", limited)
        server.router.add("POST", "/api/upload/_test", limited)
        server.router.add("POST", "/api/_test/opened/{id:int}", opened)
        media = app.settings.media_path
        (media / "clip.mp4").write_bytes(clip.read_bytes())
        (media / "notes.txt").write_text("not a video")
        return server

    return factory


@pytest.fixture
async def kv_server(kv_server_factory):
    return await kv_server_factory()
