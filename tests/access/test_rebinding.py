"""DNS rebinding: the local user is a loopback client that names this machine in ``Host``
(server/policy/access.py, rule 2); a page on a name re-pointed at 127.0.0.1 is a remote client."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from typing import Any

import pytest

from core.config import Settings
from tests.access.conftest import client_for
from tests.ws.raw_client import TIMEOUT, RawClient

PROJECT = {"name": "x", "videoFilename": "a.mp4", "videoUrl": "/videos/a.mp4"}
REBOUND = "rebind.evil.example"


async def test_a_rebound_name_is_not_the_local_user(server: Any) -> None:
    host = f"{REBOUND}:{server.port}"
    async with client_for(server) as http:
        assert (await http.post("/api/projects", json=PROJECT)).status_code == 201  # the local user's
        assert (await http.get("/api/projects", headers={"host": host})).status_code == 401
        # Same-origin by the browser's lights: the page's own name is in Origin and Host alike.
        write = await http.post("/api/projects", json=PROJECT, headers={
            "host": host, "origin": f"http://{host}", "sec-fetch-site": "same-origin"})
        assert write.status_code == 401
        assert len((await http.get("/api/projects")).json()) == 1


@pytest.mark.parametrize("host", ["localhost", "LocalHost:{port}", "127.0.0.1:{port}", "[::1]:{port}",
                                  "127.0.0.1", "editor.localhost:{port}", socket.gethostname() + ":{port}"])
async def test_loopback_names_are_the_local_user(server: Any, host: str) -> None:
    async with client_for(server) as http:
        response = await http.get("/api/projects", headers={"host": host.format(port=server.port)})
        assert response.status_code == 200


async def test_configured_hosts_are_the_local_user(start_server: Any) -> None:
    server = await start_server(allowed_hosts=("Editor.LAN",))
    async with client_for(server) as http:
        assert (await http.get("/api/projects", headers={"host": f"editor.lan:{server.port}"})).status_code == 200
        assert (await http.get("/api/projects", headers={"host": f"{REBOUND}:{server.port}"})).status_code == 401


def test_allowed_hosts_are_read_from_the_environment() -> None:
    assert Settings.from_env({"NVE_ALLOWED_HOSTS": " editor.lan, nve.home ,"}).allowed_hosts == (
        "editor.lan", "nve.home")
    assert Settings.from_env({}).allowed_hosts == ()


async def test_a_websocket_from_a_rebound_name_must_authenticate(server: Any) -> None:
    host = f"{REBOUND}:{server.port}"
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert response.startswith(b"HTTP/1.1 101 "), response  # let in, but as nobody yet
    client = RawClient(reader, writer, response)
    try:
        assert (await client.message())["type"] == "ping"  # the welcome
        await client.send_text(b'{"type": "subscribe", "data": {"operationIds": ["upload-1"]}}')
        await client.ping("after")
        assert "Authenticate first" in await client.error()
        await client.pong("after")
    finally:
        client.abort()
