"""The local user's check remembered per (peer, ``Host``) (server/policy/access.py,
``Access.local_peer``): the same answers as computed afresh, request after request."""

from __future__ import annotations

from typing import Any, cast

from server.policy.access import LOCAL_PEERS_CACHED, Access
from tests.access.conftest import client_for

PROJECT = {"name": "x", "videoFilename": "a.mp4", "videoUrl": "/videos/a.mp4"}


def test_answers_stay_right_past_the_memory_bound() -> None:
    access = Access(cast(Any, None), "auto", ("editor.lan",))
    for round_ in range(2):  # the second round is answered from memory (what is left of it)
        for n in range(LOCAL_PEERS_CACHED + 50):
            assert access.local_peer("127.0.0.1", f"h{n}.localhost:{round_}")
            assert not access.local_peer("127.0.0.1", f"h{n}.example:{round_}")
            assert not access.local_peer(f"10.0.{n // 250}.{n % 250}", "localhost")
            assert len(access._local_peers) <= LOCAL_PEERS_CACHED
    assert access.local_peer("::1", "editor.lan") and access.local_peer("127.0.0.1%lo", "[::1]:80")
    assert not access.local_peer("", "localhost") and not access.local_peer("127.0.0.1", None)


async def test_one_connection_alternating_host_and_proxy_headers(server: Any) -> None:
    local, rebound = f"127.0.0.1:{server.port}", f"rebind.example:{server.port}"
    async with client_for(server) as http:
        assert (await http.post("/api/projects", json=PROJECT)).status_code == 201
        for _ in range(3):  # one keep-alive connection: one peer, its answers remembered
            assert (await http.get("/api/projects", headers={"host": local})).status_code == 200
            assert (await http.get("/api/projects", headers={"host": rebound})).status_code == 401
            forwarded = await http.get("/api/projects", headers={"host": local, "x-real-ip": "203.0.113.9"})
            assert forwarded.status_code == 401
            assert (await http.get("/api/projects", headers={"host": local})).status_code == 200
