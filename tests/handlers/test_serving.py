"""GET/HEAD /videos/{filename}: Range, ETag, Content-Type, and no way out of the media directory."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from server.http.files import parse_range

SIZE = 1_000_003  # not a multiple of the read chunk


@pytest.fixture
def stored(media_dir: Path) -> tuple[str, bytes]:
    data = os.urandom(SIZE)
    (media_dir / "sample.mp4").write_bytes(data)
    return "sample.mp4", data


@pytest.fixture
async def client(media_server):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{media_server.port}", timeout=10) as client:
        yield client


async def test_whole_file(client, stored) -> None:
    name, data = stored
    response = await client.get(f"/videos/{name}")
    assert response.status_code == 200 and response.content == data
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(SIZE)
    assert response.headers["etag"].startswith('"') and "last-modified" in response.headers


RANGES = [
    ("bytes=0-0", 0, 0),                       # first byte
    (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE - 1),  # last byte
    ("bytes=100-", 100, SIZE - 1),             # open-ended
    ("bytes=-500", SIZE - 500, SIZE - 1),      # suffix
    (f"bytes=-{SIZE * 2}", 0, SIZE - 1),       # suffix longer than the file
    (f"bytes=10-{SIZE * 5}", 10, SIZE - 1),    # end past the end is clamped
    ("bytes=262140-262150", 262140, 262150),   # across a read-chunk boundary
]


async def test_ranges(client, stored) -> None:
    name, data = stored
    for header, first, last in RANGES:
        response = await client.get(f"/videos/{name}", headers={"range": header})
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"
        assert response.headers["content-length"] == str(last - first + 1)
        assert response.content == data[first:last + 1]


async def test_unsatisfiable_range(client, stored) -> None:
    for header in (f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"):
        response = await client.get(f"/videos/{stored[0]}", headers={"range": header})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{SIZE}"
        assert "error" in response.json()


async def test_ranges_ignored_send_everything(client, stored) -> None:
    for header in ("bytes=0-1,5-6", "items=0-1", "bytes=5-3", "bytes=abc", "bytes=-"):
        response = await client.get(f"/videos/{stored[0]}", headers={"range": header})
        assert response.status_code == 200 and response.content == stored[1], header


async def test_etag_if_none_match_and_if_range(client, stored, media_dir: Path) -> None:
    name, data = stored
    etag = (await client.head(f"/videos/{name}")).headers["etag"]
    not_modified = await client.get(f"/videos/{name}", headers={"if-none-match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    listed = await client.get(f"/videos/{name}", headers={"if-none-match": f'"other", W/{etag}'})
    assert listed.status_code == 304
    assert (await client.get(f"/videos/{name}", headers={"if-none-match": '"other"'})).status_code == 200
    ranged = await client.get(f"/videos/{name}", headers={"range": "bytes=0-9", "if-range": etag})
    assert ranged.status_code == 206
    stale = await client.get(f"/videos/{name}", headers={"range": "bytes=0-9", "if-range": '"old"'})
    assert stale.status_code == 200 and len(stale.content) == SIZE
    # A changed file gets a new ETag, so the old one no longer matches.
    (media_dir / name).write_bytes(data[:10])
    changed = await client.get(f"/videos/{name}", headers={"if-none-match": etag})
    assert changed.status_code == 200 and changed.content == data[:10] and changed.headers["etag"] != etag


async def test_if_modified_since(client, stored, media_dir: Path) -> None:
    name, _data = stored
    os.utime(media_dir / name, (1_700_000_000.25, 1_700_000_000.25))
    last_modified = (await client.head(f"/videos/{name}")).headers["last-modified"]
    assert last_modified == "Tue, 14 Nov 2023 22:13:20 GMT"
    for since in (last_modified, "Tue, 14 Nov 2023 22:13:21 GMT", "Tuesday, 14-Nov-23 22:13:20 GMT",
                  "Tue Nov 14 22:13:20 2023"):  # the three HTTP-date formats, equal or later
        for method in ("GET", "HEAD"):
            response = await client.request(method, f"/videos/{name}", headers={"if-modified-since": since})
            assert response.status_code == 304 and response.content == b"", (method, since)
            assert response.headers["last-modified"] == last_modified and "etag" in response.headers
    for since in ("Tue, 14 Nov 2023 22:13:19 GMT", "yesterday", ""):  # earlier, or not a date: ignored
        response = await client.get(f"/videos/{name}", headers={"if-modified-since": since})
        assert response.status_code == 200 and len(response.content) == SIZE, since
    # If-None-Match decides alone when present (RFC 9110 section 13.2.2).
    both = await client.get(f"/videos/{name}", headers={"if-modified-since": last_modified,
                                                         "if-none-match": '"other"'})
    assert both.status_code == 200
    ranged = await client.get(f"/videos/{name}", headers={"if-modified-since": last_modified, "range": "bytes=0-9"})
    assert ranged.status_code == 304


async def test_static_files_answer_if_modified_since(client) -> None:
    first = await client.get("/static/js/api.js")
    assert first.status_code == 200 and "last-modified" in first.headers
    again = await client.get("/static/js/api.js", headers={"if-modified-since": first.headers["last-modified"]})
    assert again.status_code == 304 and again.content == b""
    earlier = await client.get("/static/js/api.js", headers={"if-modified-since": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert earlier.status_code == 200


async def test_head(client, stored) -> None:
    response = await client.head(f"/videos/{stored[0]}")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-length"] == str(SIZE)
    ranged = await client.head(f"/videos/{stored[0]}", headers={"range": "bytes=-10"})
    assert ranged.status_code == 206 and ranged.headers["content-length"] == "10"


async def test_content_types(client, media_dir: Path) -> None:
    for name, kind in [("a.webm", "video/webm"), ("b.MOV", "video/quicktime"), ("c.mkv", "video/x-matroska"),
                       ("d.bin", "application/octet-stream")]:
        (media_dir / name).write_bytes(b"x")
        assert (await client.get(f"/videos/{name}")).headers["content-type"] == kind


async def test_empty_file(client, media_dir: Path) -> None:
    (media_dir / "empty.mp4").write_bytes(b"")
    response = await client.get("/videos/empty.mp4")
    assert response.status_code == 200 and response.content == b""
    assert (await client.get("/videos/empty.mp4", headers={"range": "bytes=0-"})).status_code == 416


async def test_traversal_and_unknown_are_404(media_server, media_dir: Path, tmp_path: Path) -> None:
    (media_dir.parent / "secret.txt").write_text("secret")
    (media_dir / ".uploads").mkdir(exist_ok=True)
    (media_dir / ".uploads" / "x.part").write_text("partial")
    (media_dir / "sub").mkdir()
    targets = [
        "/videos/missing.mp4", "/videos/..%2Fsecret.txt", "/videos/%2E%2E%2Fsecret.txt", "/videos/..",
        "/videos/%2e%2e", "/videos/../secret.txt", "/videos/%2Fetc%2Fpasswd", "/videos//etc/passwd",
        "/videos/..%5Csecret.txt", "/videos/.uploads%2Fx.part", "/videos/.uploads", "/videos/sub",
        "/videos/sub%2F..%2F..%2Fsecret.txt", "/videos/secret.txt%00.mp4", "/videos/%252e%252e%252fsecret.txt",
        "/videos/C:%5Cwindows", "/videos/" + "a" * 300,
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", media_server.port)
    for target in targets:
        # Raw bytes on the wire: no client normalises the path first.
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status = await reader.readline()
        headers = {}
        while (line := await reader.readline()) != b"\r\n":
            key, _, value = line.decode().partition(":")
            headers[key.lower()] = value.strip()
        body = await reader.readexactly(int(headers["content-length"]))
        assert status.split()[1] == b"404", (target, status)
        assert headers["content-type"] == "application/json" and b'"error"' in body
        assert b"secret" not in body or b"secret.txt" in body
    writer.close()


def test_parse_range_unit() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-", 10) == (0, 9)
    assert parse_range("bytes = 2 - 3", 10) == (2, 3)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=10-", 10) is False
    assert parse_range("bytes=0-", 0) is False
    assert parse_range("bytes=-1", 0) is False
