"""tus 1.0 at /api/uploads/ end to end: create, patch, resume, checksum, terminate, expiry, locks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from pathlib import Path

import httpx
import pytest

from core.uploads.resumable import TusError, clean_once, parse_metadata
from tests.handlers.conftest import media_files

TUS = {"tus-resumable": "1.0.0"}


def metadata(**values: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items())


@pytest.fixture
async def client(media_server):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{media_server.port}", timeout=30) as client:
        yield client


async def create(client: httpx.AsyncClient, length: int, **meta: str) -> str:
    response = await client.post("/api/uploads/", headers={**TUS, "upload-length": str(length),
                                                            "upload-metadata": metadata(**meta)})
    assert response.status_code == 201, response.text
    assert response.headers["tus-resumable"] == "1.0.0" and "upload-expires" in response.headers
    return response.headers["location"]


async def patch(client: httpx.AsyncClient, url: str, offset: int, data: bytes, **headers: str) -> httpx.Response:
    return await client.patch(url, content=data, headers={
        **TUS, "upload-offset": str(offset), "content-type": "application/offset+octet-stream",
        **{key.replace("_", "-"): value for key, value in headers.items()}})


async def offset_of(client: httpx.AsyncClient, url: str) -> int:
    response = await client.head(url, headers=TUS)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    return int(response.headers["upload-offset"])


async def test_options(client, media_server) -> None:
    response = await client.options("/api/uploads/")
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-extension"] == "creation,creation-with-upload,expiration,termination,checksum"
    assert response.headers["tus-max-size"] == str(media_server.app.settings.upload_limit)
    assert "sha1" in response.headers["tus-checksum-algorithm"]


async def test_upload_in_pieces_becomes_a_video(client, media_dir: Path, clip: Path) -> None:
    data = clip.read_bytes()
    url = await create(client, len(data), filename="holiday.mp4", filetype="video/mp4", operationId="op-tus-1")
    assert url.startswith("/api/uploads/")
    assert await offset_of(client, url) == 0
    offset = 0
    for piece in (data[:1000], data[1000:20000], data[20000:]):
        response = await patch(client, url, offset, piece)
        assert response.status_code == 204, response.text
        offset += len(piece)
        assert response.headers["upload-offset"] == str(offset)
    name = response.headers["upload-video-filename"]
    assert response.headers["upload-video-url"] == f"/videos/{name}"
    assert (media_dir / name).read_bytes() == data
    status = (await client.get(url, headers=TUS)).json()
    assert status["complete"] and status["filename"] == name and status["metadata"]["width"] == 320
    assert await offset_of(client, url) == len(data)
    assert [f for f in media_files(media_dir) if not f.startswith(".tus/")] == [
        f".cache/{name}.keyframes.json", f".cache/{name}.probe.json", name]


async def test_creation_with_upload(client, media_dir: Path, clip: Path) -> None:
    data = clip.read_bytes()
    head = {**TUS, "upload-length": str(len(data)), "content-type": "application/offset+octet-stream"}
    # The first bytes with the POST, the rest with a PATCH: tus-js-client's uploadDataDuringCreation.
    started = await client.post("/api/uploads/", headers=head, content=data[:5000])
    assert started.status_code == 201, started.text
    assert started.headers["upload-offset"] == "5000" and "upload-expires" in started.headers
    url = started.headers["location"]
    assert await offset_of(client, url) == 5000
    response = await patch(client, url, 5000, data[5000:])
    assert response.status_code == 204 and (media_dir / response.headers["upload-video-filename"]).read_bytes() == data
    # The whole file with the POST: created and finished in one request.
    whole = await client.post("/api/uploads/", headers={**head, "upload-metadata": metadata(filename="one.mp4")},
                              content=data)
    assert whole.status_code == 201 and whole.headers["upload-offset"] == str(len(data)), whole.text
    assert "upload-expires" not in whole.headers
    assert (media_dir / whole.headers["upload-video-filename"]).read_bytes() == data
    assert (await client.get(whole.headers["location"], headers=TUS)).json()["complete"]
    # A body the upload cannot take is refused, and the upload (whose URL the client never saw) is gone.
    before = sorted((media_dir / ".tus").iterdir())
    bad = await client.post("/api/uploads/", headers={**head, "upload-checksum": "sha1 " + base64.b64encode(
        hashlib.sha1(b"other").digest()).decode()}, content=data[:100])
    assert bad.status_code == 460, bad.text
    assert sorted((media_dir / ".tus").iterdir()) == before


async def test_progress_and_complete_are_published(client, media_server, clip: Path) -> None:
    data = clip.read_bytes()
    url = await create(client, len(data), filename="a.mp4", operationId="op-tus-2")
    await patch(client, url, 0, data)
    hub = media_server.app.hub
    kinds = [kind for kind, message in hub.messages if message["operationId"] == "op-tus-2"]
    assert kinds[-1] == "complete" and kinds.count("complete") == 1


async def test_resume_after_a_dropped_connection(client, media_server, media_dir: Path, clip: Path) -> None:
    data = clip.read_bytes() * 8  # a valid MP4 followed by junk FFmpeg ignores is still a video
    url = await create(client, len(data), filename="big.mp4", operationId="op-drop")
    # Send half of a PATCH on a raw socket, then cut it.
    reader, writer = await asyncio.open_connection("127.0.0.1", media_server.port)
    half = len(data) // 2
    writer.write((f"PATCH {url} HTTP/1.1\r\nHost: 127.0.0.1:{media_server.port}\r\n"
                  f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                  f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(data)}\r\n\r\n").encode()
                 + data[:half])
    await writer.drain()
    upload_id = url.rsplit("/", 1)[1]
    part = media_dir / ".tus" / f"{upload_id}.part"
    # The server reports progress from its first chunk on: then it is mid-PATCH.
    hub = media_server.app.hub
    for _ in range(500):
        if any(message["operationId"] == "op-drop" for _, message in hub.messages):
            break
        await asyncio.sleep(0.01)
    writer.transport.abort()
    # The server keeps what arrived; HEAD waits for the cut-off PATCH to let go.
    offset = await offset_of(client, url)
    assert 0 < offset <= half
    assert part.read_bytes() == data[:offset]
    stale = await patch(client, url, 0, data)
    assert stale.status_code == 409 and stale.headers["upload-offset"] == str(offset)
    response = await patch(client, url, offset, data[offset:])
    assert response.status_code == 204, response.text
    assert (media_dir / response.headers["upload-video-filename"]).read_bytes() == data


async def test_checksum(client, clip: Path) -> None:
    for algorithm in ("sha1", "md5"):
        await _check_checksum(client, clip, algorithm)


async def _check_checksum(client: httpx.AsyncClient, clip: Path, algorithm: str) -> None:
    data = clip.read_bytes()
    url = await create(client, len(data), filename="c.mp4")
    piece = data[:5000]
    wrong = base64.b64encode(hashlib.new(algorithm, b"other").digest()).decode()
    response = await patch(client, url, 0, piece, upload_checksum=f"{algorithm} {wrong}")
    assert response.status_code == 460 and "checksum" in response.json()["error"].lower()
    assert await offset_of(client, url) == 0  # the mismatching bytes were dropped
    right = base64.b64encode(hashlib.new(algorithm, piece).digest()).decode()
    response = await patch(client, url, 0, piece, upload_checksum=f"{algorithm} {right}")
    assert response.status_code == 204 and response.headers["upload-offset"] == "5000"
    response = await patch(client, url, 5000, data[5000:], upload_checksum="crc32 AAAA")
    assert response.status_code == 400
    assert await offset_of(client, url) == 5000


async def test_protocol_errors(client, media_server) -> None:
    assert (await client.post("/api/uploads/", headers={"upload-length": "10"})).status_code == 412
    wrong = await client.post("/api/uploads/", headers={"tus-resumable": "0.2.2", "upload-length": "10"})
    assert wrong.status_code == 412 and wrong.headers["tus-version"] == "1.0.0"
    assert wrong.headers["tus-resumable"] == "1.0.0" and "error" in wrong.json()
    assert (await client.post("/api/uploads/", headers=TUS)).status_code == 400
    assert (await client.post("/api/uploads/", headers={**TUS, "upload-length": "-1"})).status_code == 400
    assert (await client.post("/api/uploads/", headers={**TUS, "upload-defer-length": "1"})).status_code == 400
    too_big = str(media_server.app.settings.upload_limit + 1)
    assert (await client.post("/api/uploads/", headers={**TUS, "upload-length": too_big})).status_code == 413
    text = await client.post("/api/uploads/", headers={**TUS, "upload-length": "10",
                                                        "upload-metadata": metadata(filetype="text/plain")})
    assert text.status_code == 415
    bad_meta = await client.post("/api/uploads/", headers={**TUS, "upload-length": "10",
                                                            "upload-metadata": "filename !!!"})
    assert bad_meta.status_code == 400
    url = await create(client, 10)
    wrong_type = await client.patch(url, content=b"x", headers={**TUS, "upload-offset": "0",
                                                                "content-type": "application/json"})
    assert wrong_type.status_code == 415
    assert (await patch(client, url, 0, b"x" * 11)).status_code == 413
    missing_offset = await client.patch(url, content=b"x", headers={
        **TUS, "content-type": "application/offset+octet-stream"})
    assert missing_offset.status_code == 400
    for unknown in ("/api/uploads/" + "0" * 32, "/api/uploads/nope", "/api/uploads/..%2F..%2Fetc"):
        assert (await client.head(unknown, headers=TUS)).status_code == 404
        assert (await patch(client, unknown, 0, b"x")).status_code == 404


async def test_non_video_is_refused_and_removed_on_completion(client, media_dir: Path) -> None:
    data = os.urandom(50_000)
    url = await create(client, len(data), filename="noise.mp4")
    response = await patch(client, url, 0, data)
    assert response.status_code == 415 and response.headers["tus-resumable"] == "1.0.0"
    assert media_files(media_dir) == []
    assert (await client.head(url, headers=TUS)).status_code == 404


async def test_terminate(client, media_dir: Path) -> None:
    url = await create(client, 1000)
    await patch(client, url, 0, b"x" * 100)
    response = await client.delete(url, headers=TUS)
    assert response.status_code == 204
    assert media_files(media_dir) == []
    assert (await client.head(url, headers=TUS)).status_code == 404
    assert (await client.delete(url, headers=TUS)).status_code == 404


async def test_locked_upload_waits_then_423(client, media_server) -> None:
    url = await create(client, 1000)
    store = media_server.app.tus
    upload_id = url.rsplit("/", 1)[1]
    async with store.locked(upload_id):
        with pytest.raises(TusError) as raised:
            async with store.locked(upload_id, wait=0.1):
                pass
        assert raised.value.status == 423
        # Another open file description, as another node would have, is refused too.
        other = type(store)(store.directory, store.ttl)
        with pytest.raises(TusError):
            async with other.locked(upload_id, wait=0.1):
                pass
    async with store.locked(upload_id, wait=0.1):
        pass


async def test_two_nodes_share_uploads(media_app_factory, tmp_path: Path, clip: Path) -> None:
    shared = tmp_path / "shared-media"
    first = await media_app_factory(media_dir=shared)
    second = await media_app_factory(media_dir=shared)
    data = clip.read_bytes()
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"http://127.0.0.1:{first.port}/api/uploads/",
                                     headers={**TUS, "upload-length": str(len(data))})
        url = response.headers["location"]
        await patch(client, f"http://127.0.0.1:{first.port}{url}", 0, data[:3000])
        assert await offset_of(client, f"http://127.0.0.1:{second.port}{url}") == 3000
        response = await patch(client, f"http://127.0.0.1:{second.port}{url}", 3000, data[3000:])
        assert response.status_code == 204
        assert (shared / response.headers["upload-video-filename"]).read_bytes() == data


async def test_expired_uploads_are_cleaned(client, media_server, media_dir: Path) -> None:
    old = await create(client, 1000)
    fresh = await create(client, 1000)
    await patch(client, fresh, 0, b"x" * 10)
    (media_dir / ".uploads").mkdir(exist_ok=True)
    (media_dir / ".uploads" / "crashed.part").write_bytes(b"x")
    store = media_server.app.tus
    long_ago = time.time() - store.ttl - 10
    for path in media_dir.rglob("*"):
        if path.name.startswith(old.rsplit("/", 1)[1]) or path.name == "crashed.part":
            os.utime(path, (long_ago, long_ago))
    # A description's temporary left by a crash between its write and its rename.
    stale_temporary = store.directory / f".{'a' * 32}.json.0123abcd"
    stale_temporary.write_text("{}")
    os.utime(stale_temporary, (long_ago, long_ago))
    fresh_temporary = store.directory / f".{'b' * 32}.json.0123abcd"
    fresh_temporary.write_text("{}")
    await clean_once(store, media_server.app.settings.media_path)
    assert (await client.head(old, headers=TUS)).status_code == 404
    assert await offset_of(client, fresh) == 10
    assert not (media_dir / ".uploads" / "crashed.part").exists()
    assert not stale_temporary.exists() and fresh_temporary.exists()  # it may be mid-rename


def test_parse_metadata() -> None:
    assert parse_metadata("filename aGVsbG8=,is_confidential") == {"filename": "hello", "is_confidential": ""}
    assert parse_metadata(None) == {}
    for bad in ("filename aGVsbG8=,filename aGVsbG8=", "filename @@@", " , "):
        with pytest.raises(TusError):
            parse_metadata(bad)
