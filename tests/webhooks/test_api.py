"""The /api/webhooks routes against a real server: the secret shown once, 400s naming the field,
the SSRF refusal at creation, rotation, deliveries and redelivery, another owner's 404s, the
OpenAPI document describing every route and answer; and the app's side of the outbox: an
upload's event written in its owner row's transaction, the sender started with the server."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.media.pool import MediaPool
from core.uploads import store as uploads
from core.webhooks import store
from server.routes import document
from tests.access.conftest import MakeKey, client_for, make_key  # noqa: F401 (fixtures)
from tests.webhooks.conftest import FAST, http_for, new_project, subscribe, touch, verify
from tests.webhooks.receiver import Receiver

ENDPOINT_FIELDS = {"id", "url", "events", "description", "createdAt", "disabledAt", "disabledReason",
                   "consecutiveFailures", "previousSecretExpiresAt"}
DELIVERY_FIELDS = {"id", "eventId", "eventType", "status", "attempts", "lastStatus", "lastError", "lastAttemptAt",
                   "nextAttemptAt", "deliveredAt", "createdAt"}
SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")


def _seconds_until(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp() - time.time()


async def test_the_secret_is_shown_once(hooks_server: Any, receiver: Receiver) -> None:
    server = await hooks_server()
    async with http_for(server) as http:
        response = await http.post("/api/webhooks", json={
            "url": receiver.url("/a"), "events": ["job.completed", "upload.ready"], "description": "mine"})
        assert response.status_code == 201, response.text
        assert response.headers["cache-control"] == "no-store"
        created = response.json()
        assert set(created) == ENDPOINT_FIELDS | {"secret"}
        assert SECRET.fullmatch(created["secret"])
        assert (created["url"], created["events"], created["description"]) == (
            receiver.url("/a"), ["job.completed", "upload.ready"], "mine")
        assert created["disabledAt"] is None and created["consecutiveFailures"] == 0
        shown = {key: value for key, value in created.items() if key != "secret"}

        got = await http.get(f"/api/webhooks/{created['id']}")
        assert got.status_code == 200 and got.json() == shown
        assert "no-store" not in got.headers["cache-control"]
        listed = await http.get("/api/webhooks")
        assert listed.status_code == 200 and listed.json() == [shown]
        assert created["secret"] not in got.text + listed.text


async def test_bad_bodies_are_400s_naming_the_field(hooks_server: Any, receiver: Receiver) -> None:
    server = await hooks_server()
    url = receiver.url("/a")
    cases: list[tuple[Any, str]] = [
        ({"url": 5, "events": ["job.completed"]}, "url"),
        ({"url": "ftp://example.com/x", "events": ["job.completed"]}, "url"),
        ({"url": "not a url", "events": ["job.completed"]}, "url"),
        ({"url": "http://user:pw@127.0.0.1/", "events": ["job.completed"]}, "url"),
        ({"url": "http://no-such-host.invalid/", "events": ["job.completed"]}, "url"),
        ({"url": url, "events": []}, "events"),
        ({"url": url, "events": "job.completed"}, "events"),
        ({"url": url, "events": ["job.done"]}, "events[0]"),
        ({"url": url, "events": ["job.failed", 7]}, "events[1]"),
        ({"url": url, "events": ["job.failed"], "description": 7}, "description"),
    ]
    async with http_for(server) as http:
        for body, field in cases:
            response = await http.post("/api/webhooks", json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["field"] == field, (body, response.json())
            assert field.split("[")[0] in response.json()["error"], (body, response.json())
        # Absent required fields are told together, in one sentence (as for projects).
        for body, absent in (({"events": ["job.completed"]}, "url"), ({"url": url}, "events"),
                             ({"url": "", "description": "x"}, "url, events")):
            response = await http.post("/api/webhooks", json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["error"] == f"Missing required fields: {absent}", response.json()
        refused = await http.post("/api/webhooks", json=[])
        assert refused.status_code == 400
        assert (await http.get("/api/webhooks")).json() == []


async def test_a_private_address_is_refused_unless_allowed(start_server: Any, receiver: Receiver) -> None:
    server = await start_server()  # the default settings: private addresses refused
    async with http_for(server) as http:
        for url in (receiver.url("/a"), "http://localhost:9/", "http://10.1.2.3/", "http://[::1]/",
                    "http://169.254.169.254/latest/meta-data", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/"):
            response = await http.post("/api/webhooks", json={"url": url, "events": ["job.completed"]})
            assert response.status_code == 400, (url, response.text)
            assert response.json()["field"] == "url"
            assert "private address" in response.json()["error"], response.json()
        assert (await http.get("/api/webhooks")).json() == []


async def test_delete(hooks_server: Any, receiver: Receiver) -> None:
    server = await hooks_server()
    async with http_for(server) as http:
        endpoint = await subscribe(http, receiver.url("/gone"))
        kept = await subscribe(http, receiver.url("/kept"))
        deleted = await http.delete(f"/api/webhooks/{endpoint['id']}")
        assert deleted.status_code == 204
        for response in (await http.get(f"/api/webhooks/{endpoint['id']}"),
                         await http.delete(f"/api/webhooks/{endpoint['id']}"),
                         await http.get(f"/api/webhooks/{endpoint['id']}/deliveries")):
            assert response.status_code == 404 and response.json()["error"]
        assert [hook["id"] for hook in (await http.get("/api/webhooks")).json()] == [kept["id"]]
        # A deleted endpoint gets no more events; the other one does.
        await touch(http, (await new_project(http))["id"])
        await receiver.wait("/kept")
        assert receiver.on("/gone") == []


async def test_rotate(hooks_server: Any, receiver: Receiver) -> None:
    server = await hooks_server()
    async with http_for(server) as http:
        endpoint = await subscribe(http, receiver.url("/a"))
        path = f"/api/webhooks/{endpoint['id']}/rotate"

        bare = await http.post(path)  # no body: the default overlap (24 h)
        assert bare.status_code == 200, bare.text
        assert bare.headers["cache-control"] == "no-store"
        assert set(bare.json()) == {"secret", "previousSecretExpiresAt"}
        assert SECRET.fullmatch(bare.json()["secret"]) and bare.json()["secret"] != endpoint["secret"]
        assert 86_400 - 60 < _seconds_until(bare.json()["previousSecretExpiresAt"]) <= 86_400

        short = await http.post(path, json={"overlapSeconds": 600})
        assert short.status_code == 200, short.text
        assert 540 < _seconds_until(short.json()["previousSecretExpiresAt"]) <= 600
        got = (await http.get(f"/api/webhooks/{endpoint['id']}")).json()
        assert got["previousSecretExpiresAt"] is not None and "secret" not in got

        for body in ({"overlapSeconds": -1}, {"overlapSeconds": 604_801}, {"overlapSeconds": "1"}):
            response = await http.post(path, json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["field"] == "overlapSeconds" and "overlapSeconds" in response.json()["error"]

        # Messages now carry both signatures: the new secret and the one it replaced.
        await touch(http, (await new_project(http))["id"])
        [message] = await receiver.wait("/a")
        assert verify(short.json()["secret"], message) and verify(bare.json()["secret"], message)
        assert len(message.headers["webhook-signature"].split()) == 2


async def test_deliveries_and_redeliver(hooks_server: Any, receiver: Receiver) -> None:
    server = await hooks_server()
    async with http_for(server) as http:
        endpoint = await subscribe(http, receiver.url("/a"))
        project = await new_project(http)
        await touch(http, project["id"])
        [first] = await receiver.wait("/a")
        deliveries_path = f"/api/webhooks/{endpoint['id']}/deliveries"

        # The receiver has it; the sender records the 2xx a moment later.
        for _ in range(400):
            [delivery] = (await http.get(deliveries_path)).json()
            if delivery["status"] == "delivered":
                break
            await asyncio.sleep(0.05)
        assert set(delivery) == DELIVERY_FIELDS
        assert (delivery["eventType"], delivery["eventId"], delivery["attempts"], delivery["lastStatus"]) == (
            "project.updated", first.id, 1, 200)
        assert verify(endpoint["secret"], first)["data"] == {"id": project["id"], "version": 2}

        again = await http.post(f"{deliveries_path}/{delivery['id']}/redeliver")
        assert again.status_code == 202, again.text
        assert again.json()["status"] == "pending" and again.json()["id"] == delivery["id"]
        [_, second] = await receiver.wait("/a", 2)
        assert second.id == first.id and second.body == first.body
        assert verify(endpoint["secret"], second)

        for path in (f"{deliveries_path}/{delivery['id'] + 1000}/redeliver",
                     f"/api/webhooks/{uuid.uuid4()}/deliveries/{delivery['id']}/redeliver"):
            missing = await http.post(path)
            assert missing.status_code == 404, (path, missing.text)
        bad = await http.post(f"{deliveries_path}/abc/redeliver")
        assert bad.status_code == 400 and bad.json()["field"] == "deliveryId"


async def test_another_owners_webhooks_are_404(start_server: Any, make_key: MakeKey, receiver: Receiver) -> None:
    server = await start_server(access="owners", webhooks=FAST)
    mine, theirs = await make_key("alice"), await make_key("mallory")
    async with client_for(server, mine) as alice, client_for(server, theirs) as mallory:
        endpoint = await subscribe(alice, receiver.url("/alice"))
        await touch(alice, (await new_project(alice))["id"])
        await receiver.wait("/alice")
        [delivery] = (await alice.get(f"/api/webhooks/{endpoint['id']}/deliveries")).json()

        base = f"/api/webhooks/{endpoint['id']}"
        assert (await mallory.get("/api/webhooks")).json() == []
        for method, path in (("GET", base), ("DELETE", base), ("POST", f"{base}/rotate"),
                             ("GET", f"{base}/deliveries"), ("POST", f"{base}/deliveries/{delivery['id']}/redeliver")):
            response = await mallory.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
        # A malformed id is not found either (not a 400 or a 500).
        assert (await mallory.get("/api/webhooks/not-a-uuid")).status_code == 404

        # Mallory's own endpoint hears nothing of Alice's projects.
        await subscribe(mallory, receiver.url("/mallory"))
        await touch(alice, (await new_project(alice))["id"])
        await receiver.wait("/alice", 2)
        assert receiver.on("/mallory") == []
        assert (await alice.get(base)).status_code == 200
        assert len((await alice.get(f"{base}/deliveries")).json()) == 2
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as anonymous:
        assert (await anonymous.get("/api/webhooks")).status_code == 401


def test_the_openapi_document_describes_the_webhook_routes() -> None:
    doc = document()
    paths = doc["paths"]
    assert set(paths["/api/webhooks"]) == {"get", "post"}
    assert set(paths["/api/webhooks/{id}"]) == {"get", "delete"}
    assert set(paths["/api/webhooks/{id}/rotate"]) == {"post"}
    assert set(paths["/api/webhooks/{id}/deliveries"]) == {"get"}
    assert set(paths["/api/webhooks/{id}/deliveries/{deliveryId}/redeliver"]) == {"post"}
    schemas = doc["components"]["schemas"]
    assert set(schemas["Webhook"]["properties"]) == ENDPOINT_FIELDS
    assert set(schemas["WebhookCreated"]["properties"]) == ENDPOINT_FIELDS | {"secret"}
    assert set(schemas["WebhookDelivery"]["properties"]) == DELIVERY_FIELDS
    new = schemas[paths["/api/webhooks"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                  .rpartition("/")[2]]
    assert new["required"] == ["url", "events"] and new["properties"]["events"]["minItems"] == 1
    assert not paths["/api/webhooks/{id}/rotate"]["post"]["requestBody"]["required"]

    for operation, status in ((paths["/api/webhooks"]["post"], "201"),
                              (paths["/api/webhooks/{id}/rotate"]["post"], "200")):
        assert "no-store" in operation["responses"][status]["description"]


async def test_an_upload_announces_itself_with_what_it_answered(hooks_server: Any, receiver: Receiver,
                                                                shared_pool: MediaPool, clip: Path) -> None:
    server = await hooks_server()
    server.app.media_pool = shared_pool  # warm already; the app's own stays cold
    async with http_for(server) as http:
        endpoint = await subscribe(http, receiver.url("/uploads"), ["upload.ready"])
        response = await http.post("/api/upload", files={"video": ("clip.mp4", clip.read_bytes(), "video/mp4")})
        assert response.status_code == 201, response.text
        [message] = await receiver.wait("/uploads")
        payload = verify(endpoint["secret"], message)
        assert payload["type"] == "upload.ready" and payload["data"] == response.json()


async def test_an_upload_whose_owner_row_rolls_back_has_no_event(hooks_server: Any, receiver: Receiver,
                                                                  shared_pool: MediaPool, clip: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The event is written in the owner row's transaction: when that fails after the event was
    written, neither remains (nor the file), and nothing is sent."""
    server = await hooks_server()
    server.app.media_pool = shared_pool

    async def emit_then_fail(*args: Any) -> None:
        assert await store.emit(*args) is not None  # written, in the transaction
        raise RuntimeError("the transaction fails after the event")

    monkeypatch.setattr(uploads, "emit", emit_then_fail)
    async with http_for(server) as http:
        await subscribe(http, receiver.url("/uploads"), ["upload.ready"])
        response = await http.post("/api/upload", files={"video": ("clip.mp4", clip.read_bytes(), "video/mp4")})
        assert response.status_code == 500, response.text
    async with server.app.db.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM webhook_events") == 0
        assert await connection.fetchval("SELECT count(*) FROM media_files") == 0
    assert [path.name for path in server.app.settings.media_path.iterdir() if not path.name.startswith(".")] == []
    await asyncio.sleep(0.3)  # a few sender polls
    assert receiver.received == []


async def test_the_sender_runs_with_the_server_and_reports_its_state(hooks_server: Any) -> None:
    server = await hooks_server()
    async with http_for(server) as http:
        for _ in range(100):
            webhooks = (await http.get("/readyz")).json()["webhooks"]
            if webhooks["events"] == "listening":
                break
            await asyncio.sleep(0.05)
    assert webhooks["events"] == "listening" and webhooks["inFlight"] == 0, webhooks
