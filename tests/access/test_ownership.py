"""Every project, upload, job and output belongs to its owner; anyone else gets 404 (issue #8, Access)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from server.ws.client import WsClient
from tests.access.conftest import MakeKey, client_for
from tests.jobs.conftest import finished_over_http

PROJECT = {"name": "Mine", "videoFilename": "a.mp4", "videoUrl": "/videos/a.mp4"}


async def test_no_credential_is_a_401_that_says_how_to_authenticate(owners_server: Any) -> None:
    async with client_for(owners_server) as anonymous:
        response = await anonymous.get("/api/projects")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in response.json()["error"]
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/api/openapi.json")).status_code == 200
        for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer nve_not-a-key"):
            refused = await anonymous.get("/api/projects", headers={"authorization": header})
            assert refused.status_code == 401, header


async def test_another_tenants_project_is_not_found(owners_server: Any, make_key: MakeKey) -> None:
    async with client_for(owners_server, await make_key("alice")) as alice, \
            client_for(owners_server, await make_key("bob")) as bob:
        created = await alice.post("/api/projects", json=PROJECT)
        assert created.status_code == 201
        project_id = created.json()["id"]
        assert "owner" not in created.json()  # the row shape of the contract, unchanged

        assert (await alice.get(f"/api/projects/{project_id}")).status_code == 200
        for attempt in (bob.get(f"/api/projects/{project_id}"),
                        bob.put(f"/api/projects/{project_id}", json={"name": "Stolen"}),
                        bob.delete(f"/api/projects/{project_id}"),
                        bob.post("/api/edit/process", json={"projectId": project_id})):
            response = await attempt
            assert response.status_code == 404, response.text
            assert response.json()["error"] == f"Project {project_id} not found"
        assert (await bob.get("/api/projects")).json() == []
        [listed] = (await alice.get("/api/projects")).json()
        assert listed["name"] == "Mine"  # bob's PUT changed nothing


async def test_browser_sessions_own_what_they_make(owners_server: Any) -> None:
    async with client_for(owners_server) as first, client_for(owners_server) as second:
        page = await first.get("/")
        assert page.status_code == 200 and "nve_session" in page.cookies  # GET / starts a session
        await second.get("/api/session")  # so does the session endpoint
        assert "nve_session" in second.cookies
        again = await first.get("/")
        assert "set-cookie" not in again.headers  # a live session is kept, not replaced

        project_id = (await first.post("/api/projects", json=PROJECT)).json()["id"]
        assert (await first.get(f"/api/projects/{project_id}")).status_code == 200
        assert (await second.get(f"/api/projects/{project_id}")).status_code == 404

        async with client_for(owners_server, cookies={"nve_session": "9b2f8e0e-1f0e-4a57-9c43-0d6f1b9e3c11"}) \
                as forged:
            assert (await forged.get("/api/projects")).status_code == 401  # no such session


async def test_uploads_jobs_and_outputs_belong_to_the_uploader(
        owners_server: Any, make_key: MakeKey, clip: Path) -> None:
    async with client_for(owners_server, await make_key("alice")) as alice, \
            client_for(owners_server, await make_key("bob")) as bob:
        uploaded = await alice.post("/api/upload", files={"video": ("clip.mp4", clip.read_bytes(), "video/mp4")})
        assert uploaded.status_code == 201, uploaded.text
        filename = uploaded.json()["filename"]

        assert (await alice.get(f"/api/metadata/{filename}")).status_code == 200
        for path in (f"/videos/{filename}", f"/api/metadata/{filename}",
                     f"/api/videos/{filename}/thumbnails?count=2", f"/api/videos/{filename}/waveform"):
            assert (await bob.get(path)).status_code == 404, path
        for body in ({"filename": filename, "startTime": 0, "endTime": 1},):
            assert (await bob.post("/api/edit/trim", json=body)).status_code == 404
        assert (await bob.post("/api/edit/split", json={"filename": filename, "splitTime": 1})).status_code == 404
        assert (await bob.post("/api/edit/process", json={"filename": filename, "edits": []})).status_code == 404

        started = await alice.post("/api/edit/trim", json={"filename": filename, "startTime": 0, "endTime": 1})
        assert started.status_code == 202
        operation_id = started.json()["operationId"]
        assert (await bob.get(f"/api/jobs/{operation_id}")).status_code == 404
        assert (await bob.post(f"/api/jobs/{operation_id}/cancel")).status_code == 404
        done = await finished_over_http(alice, operation_id)
        assert done["status"] == "done", done
        output = done["result"]["filename"]
        assert (await alice.get(f"/videos/{output}")).status_code == 200
        assert (await bob.get(f"/videos/{output}")).status_code == 404  # the job's outputs are alice's too


async def test_idempotency_keys_are_each_owners_own(owners_server: Any, make_key: MakeKey, clip: Path) -> None:
    async with client_for(owners_server, await make_key("alice")) as alice, \
            client_for(owners_server, await make_key("bob")) as bob:
        jobs = []
        for client in (alice, bob):
            uploaded = await client.post("/api/upload", files={"video": ("c.mp4", clip.read_bytes(), "video/mp4")})
            body = {"filename": uploaded.json()["filename"], "startTime": 0, "endTime": 1}
            response = await client.post("/api/edit/trim", json=body, headers={"idempotency-key": "same"})
            assert response.status_code == 202 and "idempotent-replayed" not in response.headers
            jobs.append(response.json()["operationId"])
        assert jobs[0] != jobs[1]


async def test_tus_uploads_belong_to_their_creator(owners_server: Any, make_key: MakeKey) -> None:
    tus = {"tus-resumable": "1.0.0"}
    async with client_for(owners_server, await make_key("alice")) as alice, \
            client_for(owners_server, await make_key("bob")) as bob:
        created = await alice.post("/api/uploads/", headers={**tus, "upload-length": "100"})
        assert created.status_code == 201
        location = created.headers["location"]
        assert (await alice.head(location, headers=tus)).status_code == 200
        assert (await bob.head(location, headers=tus)).status_code == 404
        patch = {**tus, "upload-offset": "0", "content-type": "application/offset+octet-stream"}
        assert (await bob.patch(location, headers=patch, content=b"x" * 10)).status_code == 404
        assert (await bob.delete(location, headers=tus)).status_code == 404
        assert (await alice.head(location, headers=tus)).headers["upload-offset"] == "0"


async def test_websocket_clients_receive_only_their_owners_operations(
        owners_server: Any, make_key: MakeKey, clip: Path) -> None:
    alice_key, bob_key = await make_key("alice"), await make_key("bob")
    url = f"ws://127.0.0.1:{owners_server.port}/ws"
    async with client_for(owners_server, alice_key) as alice, client_for(owners_server, bob_key) as bob, \
            WsClient(url, reconnect=False, headers=[("authorization", f"Bearer {alice_key}")]) as alice_ws, \
            WsClient(url, reconnect=False, headers=[("authorization", f"Bearer {bob_key}")]) as bob_ws, \
            WsClient(url, reconnect=False) as anonymous_ws:
        await alice_ws.recv_type("ping", timeout=10)
        uploaded = await alice.post("/api/upload", files={"video": ("clip.mp4", clip.read_bytes(), "video/mp4")})
        filename = uploaded.json()["filename"]
        started = await alice.post("/api/edit/trim", json={"filename": filename, "startTime": 0, "endTime": 1})
        operation_id = started.json()["operationId"]
        await bob_ws.subscribe([operation_id])  # knowing the id is not enough

        token = (await alice.post("/api/ws/token")).json()["token"]
        assert (await bob.post("/api/ws/token")).status_code == 201

        while (await alice_ws.recv_type("complete", timeout=30)).data["operationId"] != operation_id:
            pass  # the job ran to its end: its final reached alice
        await anonymous_ws.send("auth", {"token": token})
        assert (await anonymous_ws.recv_type("authenticated", timeout=10)).data
        await anonymous_ws.subscribe([operation_id])
        late = await anonymous_ws.recv_type("complete", timeout=10)  # the latest state, now that it may know
        assert late.data["operationId"] == operation_id

        await bob_ws.ping("still here")
        pong = await bob_ws.recv_type("pong", "progress", "complete", "error", timeout=10)
        assert pong.type == "pong"  # nothing of alice's came before the answer to its ping


async def _upload_as(http: Any, clip: Path, how: str, operation_id: str) -> None:
    """Upload ``clip`` under the client-chosen ``operation_id``, chosen the way ``how`` says."""
    files = {"video": ("clip.mp4", clip.read_bytes(), "video/mp4")}
    if how == "header":
        response = await http.post("/api/upload", files=files, headers={"x-operation-id": operation_id})
    elif how == "query":
        response = await http.post("/api/upload", files=files, params={"operationId": operation_id})
    else:
        tus = {"tus-resumable": "1.0.0"}
        metadata = ",".join(f"{name} {base64.b64encode(value.encode()).decode()}"
                            for name, value in (("filename", "clip.mp4"), ("operationId", operation_id)))
        data = clip.read_bytes()
        created = await http.post("/api/uploads/", headers={
            **tus, "upload-length": str(len(data)), "upload-metadata": metadata})
        assert created.status_code == 201, created.text
        response = await http.patch(created.headers["location"], content=data, headers={
            **tus, "upload-offset": "0", "content-type": "application/offset+octet-stream"})
    assert response.is_success, response.text


@pytest.mark.parametrize("how", ["header", "query", "tus"])
async def test_client_chosen_operation_ids_are_each_owners_own(
        owners_server: Any, make_key: MakeKey, clip: Path, how: str) -> None:
    alice_key, bob_key = await make_key("alice"), await make_key("bob")
    url = f"ws://127.0.0.1:{owners_server.port}/ws"
    alice_auth = [("authorization", f"Bearer {alice_key}")]
    async with client_for(owners_server, alice_key) as alice, client_for(owners_server, bob_key) as bob, \
            WsClient(url, reconnect=False, headers=alice_auth) as alice_ws, \
            WsClient(url, reconnect=False, headers=alice_auth) as late_ws:
        await alice_ws.recv_type("ping", timeout=10)
        await _upload_as(bob, clip, "header", "upload-42")  # bob's operation ends first
        await _upload_as(alice, clip, how, "upload-42")
        complete = await alice_ws.recv_type("complete", timeout=10)
        assert complete.data["operationId"] == "upload-42"
        filename = complete.data["result"]["filename"]
        assert (await alice.get(f"/videos/{filename}")).status_code == 200  # alice's own upload

        await late_ws.recv_type("ping", timeout=10)
        await late_ws.subscribe(["upload-42"])
        latest = await late_ws.recv_type("complete", timeout=10)  # alice's latest state, not bob's
        assert latest.data["result"]["filename"] == filename
