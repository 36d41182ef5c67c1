"""POST /api/upload end to end over real sockets: stored, refused, limited, cut off."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx

from tests.handlers.conftest import media_files
from tests.media.clips import make_audio_clip

BOUNDARY = "nve-test-boundary-1234"


def multipart(content: bytes, *, field: str = "video", filename: str = "my clip.mp4",
              extra_fields: dict[str, str] | None = None) -> bytes:
    out = bytearray()
    for name, value in (extra_fields or {}).items():
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: video/mp4\r\n\r\n").encode()
    out += content + f"\r\n--{BOUNDARY}--\r\n".encode()
    return bytes(out)


async def apost(port: int, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"http://127.0.0.1:{port}/api/upload", content=body,
                                 headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}",
                                          **(headers or {})})


async def test_upload_stores_probes_and_serves(media_server, media_dir: Path, clip: Path) -> None:
    data = clip.read_bytes()
    response = await apost(media_server.port, multipart(data, extra_fields={"title": "x"}),
                           {"x-operation-id": "upload-test-1"})
    assert response.status_code == 201, response.text
    body = response.json()
    name = body["filename"]
    assert set(body) == {"filename", "url", "metadata"}
    assert body["url"] == f"/videos/{name}" and name.endswith(".mp4") and "clip" not in name
    meta = body["metadata"]
    assert (meta["width"], meta["height"], meta["codec"]) == (320, 240, "h264")
    assert abs(meta["duration"] - 2.0) < 0.1
    assert (media_dir / name).read_bytes() == data
    # the file, its keyframe index and its description
    assert media_files(media_dir) == [f".cache/{name}.keyframes.json", f".cache/{name}.probe.json", name]
    async with httpx.AsyncClient() as client:
        served = await client.get(f"http://127.0.0.1:{media_server.port}{body['url']}")
    assert served.content == data and served.headers["content-type"] == "video/mp4"
    hub = media_server.app.hub
    kinds = [kind for kind, message in hub.messages if message["operationId"] == "upload-test-1"]
    assert kinds[-2:] == ["progress", "complete"] and "error" not in kinds
    progress = [m["progress"] for k, m in hub.messages if k == "progress"]
    assert progress == sorted(progress) and progress[-1] == 100
    assert hub.messages[-1][1]["result"]["filename"] == name


async def test_two_uploads_get_distinct_names(media_server, clip: Path) -> None:
    data = multipart(clip.read_bytes())
    first, second = await asyncio.gather(apost(media_server.port, data), apost(media_server.port, data))
    assert first.status_code == second.status_code == 201
    assert first.json()["filename"] != second.json()["filename"]


async def test_client_path_is_never_used(media_server, media_dir: Path, clip: Path) -> None:
    response = await apost(media_server.port, multipart(clip.read_bytes(), filename="../../etc/x.webm"))
    assert response.status_code == 201
    name = response.json()["filename"]
    assert name.endswith(".webm") and "/" not in name and (media_dir / name).is_file()


async def test_non_video_is_refused_and_removed(media_server, media_dir: Path) -> None:
    for content in (os.urandom(200_000),  # random bytes: FFmpeg sees raw "bin" data
                    b"",                  # an empty file
                    b"hello, this is a text file\n" * 100):
        response = await apost(media_server.port, multipart(content), {"x-operation-id": "upload-bad"})
        assert response.status_code == 415, response.text
        assert "error" in response.json()
        assert media_files(media_dir) == []
        assert media_server.app.hub.messages[-1][0] == "error"


async def test_audio_only_is_refused(media_server, media_dir: Path, tmp_path: Path) -> None:
    audio = make_audio_clip(tmp_path / "a.m4a")
    response = await apost(media_server.port, multipart(audio.read_bytes(), filename="a.m4a"))
    assert response.status_code == 415 and "no video stream" in response.json()["error"]
    assert media_files(media_dir) == []


async def test_corrupt_video_is_refused(media_server, media_dir: Path, clip: Path) -> None:
    data = bytearray(clip.read_bytes())
    # Keep the container's header, wreck the coded pictures behind it.
    mdat = data.find(b"mdat")
    data[mdat + 8:] = bytes(len(data) - mdat - 8)
    response = await apost(media_server.port, multipart(bytes(data)))
    assert response.status_code in (415, 422), response.text
    assert media_files(media_dir) == []


async def test_missing_field_and_bad_bodies(media_server, media_dir: Path, clip: Path) -> None:
    port = media_server.port
    response = await apost(port, multipart(clip.read_bytes(), field="file"))
    assert response.status_code == 400 and "'video'" in response.json()["error"]
    truncated = multipart(clip.read_bytes())[:-10]
    response = await apost(port, truncated)
    assert response.status_code == 400 and "closing boundary" in response.json()["error"]
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{port}/api/upload", json={"video": "x"})
    assert response.status_code == 400 and "multipart/form-data" in response.json()["error"]
    assert media_files(media_dir) == []


async def test_over_the_limit_by_content_length(media_app_factory, clip: Path) -> None:
    server = await media_app_factory(upload_limit=50_000)
    response = await apost(server.port, multipart(b"x" * 2_000_000))
    assert response.status_code == 413 and response.json()["limit"] == 50_000
    assert media_files(server.app.settings.media_path) == []


async def test_over_the_limit_inside_the_body(media_app_factory, clip: Path) -> None:
    # The body fits the route's allowance (limit + multipart overhead), the file does not.
    server = await media_app_factory(upload_limit=50_000)
    response = await apost(server.port, multipart(b"x" * 60_000))
    assert response.status_code == 413 and "upload limit" in response.json()["error"]
    assert media_files(server.app.settings.media_path) == []


async def test_chunked_upload(media_server, media_dir: Path, clip: Path) -> None:
    data = multipart(clip.read_bytes())

    async def chunks():
        for i in range(0, len(data), 777):
            yield data[i:i + 777]

    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{media_server.port}/api/upload", content=chunks(),
                                     headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert response.status_code == 201, response.text
    assert (media_dir / response.json()["filename"]).read_bytes() == clip.read_bytes()


async def test_connection_dropped_mid_upload_leaves_no_file(media_server, media_dir: Path, clip: Path) -> None:
    data = multipart(clip.read_bytes() * 20)
    head = (f"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", media_server.port)
    writer.write(head + data[:len(data) // 2])
    await writer.drain()
    # Wait until the server holds a partial file, then vanish without finishing.
    for _ in range(200):
        if media_files(media_dir):
            break
        await asyncio.sleep(0.01)
    assert media_files(media_dir) and all(f.startswith(".uploads/") for f in media_files(media_dir))
    writer.transport.abort()
    for _ in range(300):
        if not media_files(media_dir):
            break
        await asyncio.sleep(0.01)
    assert media_files(media_dir) == []
    assert media_server.app.hub.messages[-1][0] == "error"


async def test_expect_continue_over_the_limit_gets_413_before_the_body(media_app_factory) -> None:
    server = await media_app_factory(upload_limit=1000)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write((f"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n"
                  f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode())
    reply = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 413 ")
