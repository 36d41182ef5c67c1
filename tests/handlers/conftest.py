"""Fixtures for the media API tests: a server on the session's warm media pool whose hub
records what the upload handlers publish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.media.pool import MediaPool
from server.ws.messages import job_envelope


class RecordingHub:
    """Stands in for the WebSocket hub: validates like it, keeps what was published, in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, message_type: str, data: dict[str, Any], owner: str) -> None:
        job_envelope(message_type, data, owner)  # raises BadMessage as Hub.publish would
        self.messages.append((message_type, data))


@pytest.fixture
def media_app_factory(start_server, shared_pool: MediaPool):
    """``await media_app_factory(**settings)``: a running server for the media tests."""

    async def factory(**overrides: object):
        server = await start_server(**overrides)
        server.app.media_pool = shared_pool  # the app's own pool stays unused (and cold)
        server.app.hub = RecordingHub()
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
