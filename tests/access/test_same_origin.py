"""Mutating requests on ambient authority must come from this origin (server/policy/access.py, CSRF)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.access.conftest import MakeKey, client_for

PROJECT = {"name": "x", "videoFilename": "a.mp4", "videoUrl": "/videos/a.mp4"}


@pytest.mark.parametrize("headers", [
    {"origin": "http://evil.example"},
    {"origin": "null"},
    {"origin": "http://127.0.0.1:1"},  # same host, another port: another origin
    {"sec-fetch-site": "cross-site"},
    {"sec-fetch-site": "same-site"},
])
async def test_cross_site_writes_are_refused(server: Any, headers: dict[str, str]) -> None:
    async with client_for(server) as http:
        for method, path, body in (("POST", "/api/projects", PROJECT), ("PUT", "/api/session/settings", {}),
                                   ("POST", "/api/edit/trim", {})):
            response = await http.request(method, path, json=body, headers=headers)
            assert response.status_code == 403, (method, path, response.text)
            assert "refused" in response.json()["error"]
        assert (await http.get("/api/projects")).json() == []  # nothing was written


async def test_same_origin_and_non_browser_writes_pass(server: Any) -> None:
    async with client_for(server) as http:
        own = {"origin": f"http://127.0.0.1:{server.port}", "sec-fetch-site": "same-origin"}
        assert (await http.post("/api/projects", json=PROJECT, headers=own)).status_code == 201
        assert (await http.post("/api/projects", json=PROJECT, headers={"sec-fetch-site": "none"})).status_code == 201
        assert (await http.post("/api/projects", json=PROJECT)).status_code == 201  # no browser headers at all
        evil = {"origin": "http://evil.example"}
        assert (await http.get("/api/projects", headers=evil)).status_code == 200  # reads are not writes


async def test_configured_origins_may_write(start_server: Any) -> None:
    server = await start_server(allowed_origins=("https://editor.example",))
    async with client_for(server) as http:
        allowed = await http.post("/api/projects", json=PROJECT, headers={"origin": "https://editor.example"})
        assert allowed.status_code == 201
        other = await http.post("/api/projects", json=PROJECT, headers={"origin": "https://other.example"})
        assert other.status_code == 403


async def test_a_key_is_no_ambient_authority(owners_server: Any, make_key: MakeKey) -> None:
    async with client_for(owners_server, await make_key("embedder")) as http:
        response = await http.post("/api/projects", json=PROJECT, headers={"origin": "https://app.example"})
        assert response.status_code == 201  # a page cannot make a browser add this header by itself
