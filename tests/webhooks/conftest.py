"""Fixtures of the webhook tests: a real receiving HTTP server on loopback, and servers that may post to it.

The :class:`Receiver` is what a customer's endpoint is: an HTTP/1.1 server (h11 over
asyncio streams) that answers each path as the test scripted it (a status sequence, or
hang: read the request and never answer) and records every request, headers and body
bytes as they arrived, so a test checks signatures with the published ``standardwebhooks``
package exactly as a receiver would (:func:`verify`).

Servers under test get :data:`FAST` webhook settings: private addresses allowed (the
receiver is on 127.0.0.1), retries 50 ms apart instead of seconds, a short poll.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from core.webhooks.settings import WebhookSettings
from tests.jobs.conftest import FAST as FAST_JOBS
from tests.webhooks.receiver import Received, Receiver

FAST = WebhookSettings(allow_private=True, retry_base=0.05, retry_max=0.5, poll=0.1)
@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = Receiver()
    await started.start()
    yield started
    await started.close()


def verify(secret: str, request: Received) -> dict[str, Any]:
    """The payload, verified as a receiver does it with the Standard Webhooks library (raises if it fails)."""
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


def verifies(secret: str, request: Received) -> bool:
    from standardwebhooks.webhooks import WebhookVerificationError

    try:
        verify(secret, request)
    except WebhookVerificationError:
        return False
    return True


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    path = tmp_path / "media"
    path.mkdir()
    return path


@pytest.fixture
async def hooks_server(start_server: Any, media_dir: Path) -> Any:
    """``await hooks_server(**settings)``: a server that may post to the receiver, with fast retries."""

    async def factory(**overrides: Any) -> Any:
        return await start_server(**{"media_dir": media_dir, "jobs": FAST_JOBS, "webhooks": FAST, **overrides})

    return factory


def http_for(server: Any, key: str | None = None) -> httpx.AsyncClient:
    """A client of ``server``: the local user, or the owner of API key ``key``."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers=headers, timeout=30)


async def subscribe(http: httpx.AsyncClient, url: str, events: Sequence[str] = ("project.updated",),
                    **fields: Any) -> dict[str, Any]:
    """Register an endpoint; its body, with the secret shown this once."""
    response = await http.post("/api/webhooks", json={"url": url, "events": list(events), **fields})
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    assert endpoint["secret"].startswith("whsec_"), endpoint
    return endpoint


PROJECT = {"name": "hooked", "videoFilename": "a.mp4", "videoUrl": "/videos/a.mp4"}


async def new_project(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.post("/api/projects", json=PROJECT)
    assert response.status_code == 201, response.text
    project: dict[str, Any] = response.json()
    return project


async def touch(http: httpx.AsyncClient, project_id: int, name: str = "touched") -> dict[str, Any]:
    """A project PUT: the cheapest real project.updated event; returns the project as it is now."""
    response = await http.put(f"/api/projects/{project_id}", json={"name": name})
    assert response.status_code == 200, response.text
    project: dict[str, Any] = response.json()
    return project
