"""Every kind of route answers with its caching policy (server/http/caching.py, SECURITY.md "Caching")."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

PER_OWNER = ("private, no-cache", "Cookie, Authorization")
PER_OWNER_NO_STORE = ("no-store", "Cookie, Authorization")  # session data: the handler's own no-store
SHARED = ("no-cache", None)
LIVE = ("no-store", None)
ERROR = ("no-store", None)

# (method, path, expected status, expected (Cache-Control, Vary)); {video} and {project} are filled in.
POLICIES = [
    ("GET", "/videos/{video}", 200, PER_OWNER),
    ("HEAD", "/videos/{video}", 200, PER_OWNER),
    ("GET", "/api/metadata/{video}", 200, PER_OWNER),
    ("GET", "/api/videos/{video}/thumbnails?count=2", 200, PER_OWNER),
    ("GET", "/api/videos/{video}/thumbnails.jpg?count=2", 200, PER_OWNER),
    ("GET", "/api/videos/{video}/waveform?peaks=10", 200, PER_OWNER),
    ("GET", "/api/projects", 200, PER_OWNER),
    ("GET", "/api/projects/{project}", 200, PER_OWNER),
    ("GET", "/api/jobs/{job}", 200, PER_OWNER),
    ("GET", "/api/session", 200, PER_OWNER_NO_STORE),
    ("GET", "/", 200, PER_OWNER),  # may set the session cookie
    ("GET", "/static/js/api.js", 200, SHARED),
    ("GET", "/api/openapi.json", 200, SHARED),
    ("GET", "/healthz", 200, LIVE),
    ("GET", "/readyz", 200, LIVE),
    ("GET", "/metrics", 200, LIVE),
    ("GET", "/api/projects/999999", 404, ("no-store", "Cookie, Authorization")),
    ("GET", "/videos/missing.mp4", 404, ("no-store", "Cookie, Authorization")),
    ("GET", "/no/such/route", 404, ERROR),
    ("DELETE", "/healthz", 405, ERROR),
]


@pytest.fixture
async def client(media_server):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{media_server.port}", timeout=60) as client:
        yield client


async def test_every_route_kind_gets_its_policy(client, media_dir: Path, clip: Path) -> None:
    shutil.copy(clip, media_dir / "clip.mp4")
    project = await client.post("/api/projects", json={"name": "p", "videoFilename": "clip.mp4",
                                                       "videoUrl": "/videos/clip.mp4"})
    job = await client.post("/api/edit/trim", json={"filename": "clip.mp4", "startTime": 0, "endTime": 1})
    assert project.status_code == 201 and job.status_code == 202, (project.text, job.text)
    names = {"video": "clip.mp4", "project": project.json()["id"], "job": job.json()["operationId"]}
    # Writes are per owner too.
    assert (project.headers["cache-control"], project.headers.get("vary")) == PER_OWNER
    for method, path, status, (cache_control, vary) in POLICIES:
        response = await client.request(method, path.format(**names))
        assert response.status_code == status, (method, path, response.text)
        assert response.headers.get_list("cache-control") == [cache_control], (method, path)
        assert response.headers.get("vary") == vary, (method, path)


async def test_not_modified_answers_keep_the_policy(client, media_dir: Path) -> None:
    (media_dir / "a.mp4").write_bytes(b"x" * 10)
    first = await client.get("/videos/a.mp4")
    again = await client.get("/videos/a.mp4", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    assert (again.headers["cache-control"], again.headers["vary"]) == PER_OWNER
