"""Open, owners and auto access modes (server/policy/access.py, rule 2)."""

from __future__ import annotations

from typing import Any

import pytest

from core.config import Settings
from tests.access.conftest import MakeKey, client_for

PROJECT = {"name": "x", "videoFilename": "a.mp4", "videoUrl": "/videos/a.mp4"}


async def test_auto_mode_lets_this_machines_clients_in_as_the_local_user(server: Any) -> None:
    async with client_for(server) as http:
        assert server.app.settings.access == "auto"
        assert (await http.post("/api/projects", json=PROJECT)).status_code == 201
        assert len((await http.get("/api/projects")).json()) == 1


@pytest.mark.parametrize("header", ["x-forwarded-for", "forwarded", "x-real-ip"])
async def test_auto_mode_does_not_trust_a_proxied_request_to_be_local(server: Any, header: str) -> None:
    async with client_for(server) as http:
        response = await http.get("/api/projects", headers={header: "203.0.113.9"})
        assert response.status_code == 401


async def test_the_local_user_and_a_tenant_are_different_owners(server: Any, make_key: MakeKey) -> None:
    async with client_for(server) as local, client_for(server, await make_key("acme")) as tenant:
        project_id = (await local.post("/api/projects", json=PROJECT)).json()["id"]
        assert (await tenant.get(f"/api/projects/{project_id}")).status_code == 404
        assert (await tenant.get("/api/projects")).json() == []


async def test_open_mode_trusts_even_proxied_requests(start_server: Any) -> None:
    server = await start_server(access="open")
    async with client_for(server) as http:
        assert (await http.get("/api/projects", headers={"x-forwarded-for": "203.0.113.9"})).status_code == 200


async def test_revoking_a_key_takes_effect_at_the_next_request(
        owners_server: Any, make_key: MakeKey, db: Any) -> None:
    from core.access.apikeys import ApiKeyStore

    store = ApiKeyStore(db)
    key, record = await store.create("temp", "for a while")
    async with client_for(owners_server, key) as http:
        assert (await http.get("/api/projects")).status_code == 200
        revoked = await store.revoke(record.id)
        assert revoked is not None and revoked.revoked_at is not None
        assert (await http.get("/api/projects")).status_code == 401
        assert await store.revoke(record.id) is None  # once


def test_access_mode_is_validated() -> None:
    assert Settings.from_env({"NVE_ACCESS": "owners"}).access == "owners"
    with pytest.raises(ValueError, match="NVE_ACCESS must be one of auto, open, owners"):
        Settings.from_env({"NVE_ACCESS": "everyone"})


@pytest.mark.parametrize("authorization", ["Bearer nve_bogus", "Basic dXNlcjpwYXNz"])
async def test_a_bad_key_is_a_401_on_the_session_routes_too(
        owners_server: Any, make_key: MakeKey, db: Any, authorization: str) -> None:
    from core.access.apikeys import ApiKeyStore

    revoked, record = await ApiKeyStore(db).create("gone")
    await ApiKeyStore(db).revoke(record.id)
    async with client_for(owners_server) as http:
        assert (await http.get("/api/session")).status_code == 200  # the cookie is in the jar now
        for bad in (authorization, f"Bearer {revoked}"):
            headers = {"authorization": bad}
            assert (await http.get("/api/session", headers=headers)).status_code == 401
            changed = await http.put("/api/session/settings", json={"theme": "dark"}, headers=headers)
            assert changed.status_code == 401
        assert (await http.get("/api/session")).json()["settings"]["theme"] == "system"  # untouched
        valid = {"authorization": f"Bearer {await make_key('acme')}"}
        assert (await http.get("/api/session", headers=valid)).status_code == 200
