"""Timeline derivatives over HTTP: the filmstrip (JSON + sprite) and the waveform, cached on disk."""

from __future__ import annotations

import asyncio
import io
import shutil
from pathlib import Path

import av
import httpx
import pytest


@pytest.fixture
async def client(media_server):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{media_server.port}", timeout=60) as client:
        yield client


@pytest.fixture
def video(media_dir: Path, clip: Path) -> str:
    shutil.copy(clip, media_dir / "clip.mp4")
    return "clip.mp4"


async def test_thumbnails_json_and_sprite(client, media_dir: Path, video: str) -> None:
    response = await client.get(f"/api/videos/{video}/thumbnails", params={"count": 4})
    assert response.status_code == 200, response.text
    strip = response.json()
    assert strip["count"] == 4 and len(strip["times"]) == 4
    assert strip["times"] == sorted(strip["times"]) and 0 < strip["times"][0] < strip["times"][-1] < 2.0
    assert strip["sprite"] == f"/api/videos/{video}/thumbnails.jpg?count=4"
    sprite = await client.get(strip["sprite"])
    assert sprite.status_code == 200 and sprite.headers["content-type"] == "image/jpeg"
    assert sprite.content[:2] == b"\xff\xd8"
    with av.open(io.BytesIO(sprite.content)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (strip["width"], strip["height"])
    # Cached: the sprite is not made again, and conditional requests work on it.
    cached = sorted(p.name for p in (media_dir / ".cache").iterdir())
    mtimes = [p.stat().st_mtime_ns for p in sorted((media_dir / ".cache").iterdir())]
    again = await client.get(f"/api/videos/{video}/thumbnails", params={"count": 4})
    assert again.json() == strip
    assert [p.stat().st_mtime_ns for p in sorted((media_dir / ".cache").iterdir())] == mtimes
    assert cached and all(name.startswith(video) for name in cached)
    revalidated = await client.get(strip["sprite"], headers={"if-none-match": sprite.headers["etag"]})
    assert revalidated.status_code == 304


async def test_concurrent_requests_share_one_computation(client, video: str) -> None:
    responses = await asyncio.gather(*(client.get(f"/api/videos/{video}/thumbnails", params={"count": 3})
                                       for _ in range(4)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1


async def test_waveform(client, video: str) -> None:
    response = await client.get(f"/api/videos/{video}/waveform", params={"peaks": 50})
    assert response.status_code == 200, response.text
    wave = response.json()
    assert wave["audio"] is True and len(wave["peaks"]) == 50
    assert all(0 <= peak <= 1 for peak in wave["peaks"]) and max(wave["peaks"]) > 0.3
    assert len((await client.get(f"/api/videos/{video}/waveform")).json()["peaks"]) == 1000


BAD_REQUESTS = [
    ("/api/videos/missing.mp4/thumbnails", 404),
    ("/api/videos/..%2Fx/thumbnails", 404),
    ("/api/videos/.cache/waveform", 404),
    ("/api/videos/clip.mp4/thumbnails?count=0", 400),
    ("/api/videos/clip.mp4/thumbnails?count=abc", 400),
    ("/api/videos/clip.mp4/thumbnails?count=100000", 400),
    ("/api/videos/clip.mp4/waveform?peaks=-3", 400),
    ("/api/videos/missing.mp4/thumbnails.jpg", 404),
]


async def test_bad_requests(client, video: str) -> None:
    for target, status in BAD_REQUESTS:
        response = await client.get(target)
        assert response.status_code == status and "error" in response.json(), target


async def test_not_a_video(client, media_dir: Path) -> None:
    (media_dir / "noise.mp4").write_bytes(b"\x00\x01" * 5000)
    response = await client.get("/api/videos/noise.mp4/waveform")
    assert response.status_code in (415, 422) and "error" in response.json()
