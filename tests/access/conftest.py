"""Fixtures of the access tests: API keys, and a server that lets no one in without credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.access.apikeys import ApiKeyStore
from core.db.pool import Database
from tests.jobs.conftest import FAST

MakeKey = Callable[[str], Awaitable[str]]


@pytest.fixture
def make_key(db: Database) -> MakeKey:
    """``await make_key(tenant)``: a new API key for ``tenant``."""

    async def make(tenant: str) -> str:
        key, _ = await ApiKeyStore(db).create(tenant)
        return key

    return make


@pytest.fixture
async def owners_server(start_server: Any, redis_url: str, tmp_path: Path) -> Any:
    """A server in ``owners`` mode (nobody is the local user), with a worker and a real hub."""
    media = tmp_path / "media"
    media.mkdir()
    return await start_server(access="owners", redis_url=redis_url, media_dir=media, workers=1, jobs=FAST)


def client_for(server: Any, key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers=headers, timeout=30, **kwargs)
