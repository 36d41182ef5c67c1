"""A running server with the Redis services, on the test's private Redis.

Until the lead wires :class:`core.kv.services.KvServices` into the App, the fixture
installs it and the routes on the running server (what the wiring will do at start-up);
once ``app.kv`` exists it is used as it is. Either way misses are probed the production
way, in the media worker pool (the session-wide one of the media API tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.kv.connection import RedisConnection
from core.kv.services import KvServices, RateLimits
from server.handlers.metadata import pooled_probe, register_metadata_routes
from server.handlers.metrics import register_metrics_routes
from server.handlers.session import enforce_rate_limit, register_session_routes, remember_project
from server.http.request import Request
from server.http.response import Response, encode_json, json_response
from tests.media.clips import make_clip
from tests.media_api.conftest import shared_pool  # noqa: F401 (a fixture, used below)

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


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s 320x240 H.264/AAC MP4."""
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", seconds=2.0)


@pytest.fixture
def kv_server_factory(start_server, redis_url: str, clip: Path, shared_pool):
    """``await kv_server_factory(**settings)``: a server using the private Redis.

    The media directory holds ``clip.mp4`` (the clip) and ``notes.txt`` (not a video).
    """

    async def factory(**overrides: object):
        server = await start_server(redis_url=redis_url, **overrides)
        app = server.app
        if getattr(app, "media_pool", None) is None:
            app.media_pool = shared_pool
        if getattr(app, "kv", None) is None:
            app.kv = KvServices(redis_url, app.db, app.settings.media_path, pooled_probe(app),
                                limits=TEST_LIMITS)
            register_session_routes(app)
            register_metadata_routes(app)
            register_metrics_routes(app)
            await app.kv.start()
            app.on_shutdown.append(app.kv.close)
        app.router.add("POST", "/api/_test/limited", limited)
        app.router.add("POST", "/api/upload/_test", limited)
        app.router.add("POST", "/api/_test/opened/{id:int}", opened)
        media = app.settings.media_path
        (media / "clip.mp4").write_bytes(clip.read_bytes())
        (media / "notes.txt").write_text("not a video")
        return server

    return factory


@pytest.fixture
async def kv_server(kv_server_factory):
    return await kv_server_factory()
