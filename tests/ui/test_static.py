"""The static-file handler: the page, its modules, caching, and nothing outside server/static."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.ui.conftest import base_url


@pytest.fixture
async def client(server):
    async with httpx.AsyncClient(base_url=base_url(server), timeout=10) as client:
        yield client


async def test_index_is_the_editor_page_with_a_strict_policy(client):
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/static/js/main.js">' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy


TYPES = {
    "/static/js/main.js": "text/javascript; charset=utf-8",
    "/static/js/nve-ws.js": "text/javascript; charset=utf-8",
    "/static/css/app.css": "text/css; charset=utf-8",
    "/static/index.html": "text/html; charset=utf-8",
}


async def test_files_are_served_with_their_type(client):
    for path, content_type in TYPES.items():
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == content_type
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-cache"


async def test_etag_revalidation_answers_304(client):
    first = await client.get("/static/js/api.js")
    tag = first.headers["etag"]
    again = await client.get("/static/js/api.js", headers={"if-none-match": tag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    weak = await client.get("/static/js/api.js", headers={"if-none-match": f'"other", W/{tag}'})
    assert weak.status_code == 304
    other = await client.get("/static/js/api.js", headers={"if-none-match": '"stale"'})
    assert other.status_code == 200 and other.content == first.content


async def test_head_has_no_body(client):
    response = await client.head("/static/js/api.js")
    assert response.status_code == 200
    assert response.content == b""


OUTSIDE = [
    "/static/../handlers/static.py",
    "/static/%2e%2e/handlers/static.py",
    "/static/js/%2e%2e%2f%2e%2e%2fapp.py",
    "/static/js/..%5c..%5capp.py",
    "/static/.hidden",
    "/static/js/",
    "/static/js/missing.js",
    "/static/js/nul%00.js",
    "/static/css",
]


async def test_nothing_outside_the_static_root(server):
    # Raw requests: HTTP clients normalise "..", and the server must not rely on that.
    for path in OUTSIDE:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        response = await reader.read()
        writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 404"), (path, head)
        assert b"content-type: application/json" in head.lower()
        assert "error" in json.loads(body)


@pytest.mark.parametrize("relative", [
    "../app.py", "js/../../app.py", "js/./api.js", "/etc/passwd", "js//api.js", "js\\api.js", ".git/config", "", "js",
])
def test_resolve_refuses_anything_but_a_plain_file_path(relative):
    from server.handlers.static import resolve
    from server.http.response import HTTPError

    with pytest.raises(HTTPError) as raised:
        resolve(relative)
    assert raised.value.status == 404


def test_resolve_finds_a_module():
    from server.handlers.static import STATIC_ROOT, resolve

    assert resolve("js/api.js") == STATIC_ROOT / "js" / "api.js"
