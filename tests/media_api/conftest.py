"""Fixtures for the media API tests: a server with the media and tus routes, and tiny clips.

The routes are mounted here on the running server's router until the lead wires them
into the app; the media pool is shared by the whole session, because warming a worker
(``import av``) costs more than most of these tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.media.pool import MediaPool
from server.ws.messages import job_envelope
from tests.media.clips import make_clip


@pytest.fixture(scope="session")
def shared_pool() -> Iterator[MediaPool]:
    pool = MediaPool(1)
    asyncio.run(pool.start())
    yield pool
    asyncio.run(pool.close())


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s 320x240 H.264/AAC MP4."""
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", seconds=2.0)


class RecordingHub:
    """Stands in for the WebSocket hub: validates like it, keeps what was published, in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, message_type: str, data: dict[str, Any]) -> None:
        job_envelope(message_type, data)  # raises BadMessage as Hub.publish would
        self.messages.append((message_type, data))


@pytest.fixture
def media_app_factory(start_server, shared_pool: MediaPool):
    """``await media_app_factory(**settings)``: a running server with the media routes."""
    from server.handlers.media import register_media_routes
    from server.handlers.tus import install_tus

    async def factory(**overrides: object):
        server = await start_server(**overrides)
        app = server.app
        # The app's own pool, once the lead wires one, stays unused (and cold) here.
        app.media_pool = shared_pool
        if not any(route.pattern == "/api/upload" for route in app.router.routes):
            register_media_routes(app)
            install_tus(app)
        app.hub = RecordingHub()
        return server

    return factory


@pytest.fixture
async def media_server(media_app_factory):
    return await media_app_factory()


@pytest.fixture
def media_dir(media_server) -> Path:
    return media_server.app.settings.media_path


def media_files(media_dir: Path) -> list[str]:
    """Every file under the media directory, hidden working directories included."""
    return sorted(str(path.relative_to(media_dir)) for path in media_dir.rglob("*") if path.is_file())
