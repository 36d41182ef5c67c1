"""Webhooks end to end: real jobs, uploads and projects posting to a real receiver on loopback.

Every payload is checked the way a customer's receiver checks it, with the published
``standardwebhooks`` package. The server is the production code path (in process, or
``nve serve`` as a process where it is SIGKILLed); only the retry backoff and the poll are
shortened (tests/webhooks/conftest.py ``FAST``), and for the SIGKILL test the lease (3 s) and
the attempt timeout (2 s), so the restarted server re-sends what the killed one had in flight
within seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.access.conftest import MakeKey, make_key  # noqa: F401 (fixtures)
from tests.faults.test_server_killed import Serve
from tests.jobs.conftest import finished_over_http, spawn_worker  # noqa: F401 (fixtures)
from tests.webhooks.conftest import FAST, http_for, new_project, subscribe, touch, verifies, verify
from tests.webhooks.receiver import HANG, Received, Receiver

ALL_EVENTS = ("job.completed", "job.failed", "job.cancelled", "upload.ready", "project.updated")


def _subject(payload: dict[str, Any]) -> tuple[str, object]:
    """What an event is about: (type, operation id / filename / project id)."""
    data = payload["data"]
    key = data.get("operationId", data.get("filename", data.get("id")))
    return payload["type"], key


def _same_event_same_bytes(arrivals: list[Received]) -> dict[str, bytes]:
    """webhook-id -> body; fails if one id ever came with two different bodies."""
    bodies: dict[str, bytes] = {}
    for request in arrivals:
        assert bodies.setdefault(request.id, request.body) == request.body, request.id
    return bodies


def _check_timestamps(request: Received, payload: dict[str, Any]) -> None:
    """webhook-timestamp is the attempt's unix time; the body's timestamp the event's, ISO 8601 UTC."""
    assert abs(int(request.headers["webhook-timestamp"]) - request.at) < 60, request.headers
    created = datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
    assert created.utcoffset() is not None and created.utcoffset().total_seconds() == 0, payload["timestamp"]
    assert created.timestamp() <= request.at + 1 and request.at - created.timestamp() < 60, payload["timestamp"]


async def _all_delivered(http: Any, endpoint_id: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The endpoint's deliveries once ``count`` of them are delivered (the sender records a 2xx after it came)."""
    deadline = time.monotonic() + timeout
    while True:
        response = await http.get(f"/api/webhooks/{endpoint_id}/deliveries")
        assert response.status_code == 200, response.text
        deliveries: list[dict[str, Any]] = response.json()
        if sum(delivery["status"] == "delivered" for delivery in deliveries) >= count:
            return deliveries
        assert time.monotonic() < deadline, deliveries
        await asyncio.sleep(0.05)


async def test_jobs_uploads_and_projects_send_signed_events(
        hooks_server: Any, receiver: Receiver, clip: Path, spawn_worker: Any) -> None:
    server = await hooks_server(workers=0)  # a worker is spawned once the cancelled job is cancelled
    async with http_for(server) as http:
        endpoint = await subscribe(http, receiver.url("/all"), ALL_EVENTS, description="everything")
        uploaded = await http.post("/api/upload", files={"video": ("clip.mp4", clip.read_bytes(), "video/mp4")})
        assert uploaded.status_code == 201, uploaded.text
        upload = uploaded.json()

        async def trim(start: float, end: float) -> str:
            response = await http.post("/api/edit/trim", json={"filename": upload["filename"],
                                                               "startTime": start, "endTime": end})
            assert response.status_code == 202, response.text
            return str(response.json()["operationId"])

        cancelled_id = await trim(0, 1)
        assert (await http.post(f"/api/jobs/{cancelled_id}/cancel")).status_code == 200
        done_id, failed_id = await trim(0.5, 1.5), await trim(5, 6)  # the clip is 2 s: past the end fails
        project = await new_project(http)
        touched = await touch(http, project["id"])
        await spawn_worker()
        jobs = {operation_id: await finished_over_http(http, operation_id)
                for operation_id in (done_id, failed_id, cancelled_id)}
        assert [job["status"] for job in jobs.values()] == ["done", "failed", "cancelled"], jobs

        expected = {("job.completed", done_id): jobs[done_id], ("job.failed", failed_id): jobs[failed_id],
                    ("job.cancelled", cancelled_id): jobs[cancelled_id],
                    ("upload.ready", upload["filename"]): {key: upload[key] for key in ("filename", "url",
                                                                                          "metadata")},
                    ("project.updated", project["id"]): {"id": project["id"], "version": touched["version"]}}
        await receiver.wait_until(lambda: set(expected) <= {_subject(r.json()) for r in receiver.on("/all")},
                                  what="for all five events")
        arrivals = receiver.on("/all")
        _same_event_same_bytes(arrivals)
        seen = {}
        for request in arrivals:
            payload = verify(endpoint["secret"], request)
            _check_timestamps(request, payload)
            seen.setdefault(_subject(payload), set()).add(request.id)
        for subject, data in expected.items():
            payloads = [verify(endpoint["secret"], r) for r in arrivals if _subject(r.json()) == subject]
            assert payloads[0] == {"type": subject[0], "timestamp": payloads[0]["timestamp"], "data": data}, subject
        ids = [seen[subject] for subject in expected]
        assert all(len(one) == 1 for one in ids), seen  # one id per event, however often it came
        assert len(set().union(*ids)) == len(expected), seen  # and a different one for each event


async def test_500_three_times_then_200_is_delivered_once_with_the_retries_visible(
        hooks_server: Any, receiver: Receiver) -> None:
    server = await hooks_server()
    receiver.script("/flaky", 500, 500, 500, 200)
    async with http_for(server) as http:
        endpoint = await subscribe(http, receiver.url("/flaky"))
        project = await new_project(http)
        await touch(http, project["id"])
        attempts = await receiver.wait("/flaky", 4)
        [delivery] = await _all_delivered(http, endpoint["id"], 1)
        await asyncio.sleep(0.5)  # ten times the retry base: a fifth attempt would have come by now
        attempts = receiver.on("/flaky")
        assert [request.answer for request in attempts] == [500, 500, 500, 200]
        assert len({request.id for request in attempts}) == 1 and len(set(_same_event_same_bytes(attempts))) == 1
        assert all(verify(endpoint["secret"], request)["type"] == "project.updated" for request in attempts)
        stamps = [int(request.headers["webhook-timestamp"]) for request in attempts]
        assert stamps == sorted(stamps)
        assert delivery["status"] == "delivered" and delivery["attempts"] == 4 and delivery["lastStatus"] == 200
        assert delivery["eventId"] == attempts[0].id and delivery["eventType"] == "project.updated"
        assert delivery["deliveredAt"] is not None and delivery["nextAttemptAt"] is None


async def test_a_hanging_receiver_does_not_delay_another_endpoint(hooks_server: Any, receiver: Receiver) -> None:
    server = await hooks_server()
    receiver.script("/slow", HANG)
    async with http_for(server) as http:
        await subscribe(http, receiver.url("/slow"))
        fast = await subscribe(http, receiver.url("/fast"))
        project = await new_project(http)
        changed_at = {}
        for index in range(8):  # twice as many as one endpoint may have in flight
            touched = await touch(http, project["id"], f"v{index}")
            changed_at[touched["version"]] = time.time()
            await asyncio.sleep(0.05)
        arrivals = await receiver.wait("/fast", 8, timeout=10)
        delays = {verify(fast["secret"], r)["data"]["version"]: r.at - changed_at[r.json()["data"]["version"]]
                  for r in arrivals}
        assert set(delays) == set(changed_at)
        assert max(delays.values()) < 2.0, delays
        # The slow endpoint holds its own share of the senders (4 in flight), and not one more.
        hanging = await receiver.wait("/slow", 4, timeout=5)
        await asyncio.sleep(0.3)
        assert len(receiver.on("/slow")) == 4 and all(request.answer is HANG for request in hanging)


async def test_sigkilled_server_delivers_everything_after_a_restart(
        migrated_dsn: str, media_dir: Path, clip: Path, receiver: Receiver, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One receiver down (503), one hanging with deliveries in flight, when `nve serve` is SIGKILLed.

    The hanging ones are sent again once their lease expires (3 s here, NVE_WEBHOOK_LEASE; it
    must outlast an attempt's timeout, 2 s here).
    """
    for name, value in {"NVE_WEBHOOK_ALLOW_PRIVATE": "1", "NVE_WEBHOOK_RETRY_BASE": str(FAST.retry_base),
                        "NVE_WEBHOOK_RETRY_MAX": str(FAST.retry_max), "NVE_WEBHOOK_POLL": str(FAST.poll),
                        # Fast retries to a receiver that is down would disable it before the kill.
                        "NVE_WEBHOOK_DISABLE_AFTER": "100000",
                        "NVE_WEBHOOK_LEASE": "3", "NVE_WEBHOOK_TIMEOUT": "2"}.items():
        monkeypatch.setenv(name, value)  # Serve hands its environment to `nve serve`
    (media_dir / "clip.mp4").write_bytes(clip.read_bytes())
    receiver.script("/down", 503)
    receiver.script("/hang", HANG)
    events = ("project.updated", "job.completed")
    first = Serve(migrated_dsn, media_dir, tmp_path)
    second: Serve | None = None
    async with http_for(first) as http:
        try:
            await first.ready(http)
            endpoints = {path: await subscribe(http, receiver.url(path), events) for path in ("/down", "/hang")}
            project = await new_project(http)
            for index in range(3):
                await touch(http, project["id"], f"v{index}")
            for _ in range(2):
                response = await http.post("/api/edit/trim", json={"filename": "clip.mp4", "startTime": 0.5,
                                                                   "endTime": 1.5})
                assert response.status_code == 202, response.text
            await receiver.wait_until(lambda: len({r.id for r in receiver.on("/down")}) == 5
                                      and len(receiver.on("/hang")) == 4, 30, "for attempts of every event")
            before = _same_event_same_bytes(receiver.on("/down"))
            hung = _same_event_same_bytes(receiver.on("/hang"))
            assert set(hung) < set(before)  # four in flight (the endpoint's cap), the fifth waiting

            await first.kill()
            receiver.script("/down", 200)
            receiver.script("/hang", 200)
            second = Serve(migrated_dsn, media_dir, tmp_path)
            await second.ready(http)
            await receiver.wait_until(
                lambda: all({r.id for r in receiver.on(path) if r.answer == 200} >= set(before)
                            for path in endpoints), 60, "for every event to be acknowledged after the restart")
            for path, endpoint in endpoints.items():
                arrivals = receiver.on(path)
                # The same ids with the same bytes on both endpoints, before and after: nothing new, nothing lost.
                assert _same_event_same_bytes(arrivals) == before, path
                assert all(verify(endpoint["secret"], request) for request in arrivals)
            http.base_url = second.url
            for endpoint in endpoints.values():
                deliveries = await _all_delivered(http, endpoint["id"], 5)
                assert len(deliveries) == 5 and {d["eventId"] for d in deliveries} == set(before), deliveries
        finally:
            for serve in (first, second):
                if serve is not None:
                    await serve.stop()


async def test_a_rotated_secret_signs_with_both_during_the_overlap_then_only_the_new(
        hooks_server: Any, receiver: Receiver) -> None:
    server = await hooks_server()
    async with http_for(server) as http:
        endpoint = await subscribe(http, receiver.url("/rotated"))
        old = endpoint["secret"]
        response = await http.post(f"/api/webhooks/{endpoint['id']}/rotate", json={"overlapSeconds": 2})
        assert response.status_code == 200, response.text
        new, overlap_ends = response.json()["secret"], response.json()["previousSecretExpiresAt"]
        assert new != old and new.startswith("whsec_")
        project = await new_project(http)
        await touch(http, project["id"], "during")
        [during] = await receiver.wait("/rotated", 1)
        assert verifies(old, during) and verifies(new, during)
        assert len(during.headers["webhook-signature"].split(" ")) == 2

        ends = datetime.fromisoformat(overlap_ends.replace("Z", "+00:00")).timestamp()
        await asyncio.sleep(max(0.0, ends - time.time()) + 0.2)
        await touch(http, project["id"], "after")
        after = (await receiver.wait("/rotated", 2))[1]
        assert verifies(new, after) and not verifies(old, after)
        assert len(after.headers["webhook-signature"].split(" ")) == 1


async def test_a_loopback_endpoint_is_refused_unless_allowed(hooks_server: Any, receiver: Receiver) -> None:
    strict = await hooks_server(webhooks=dataclasses.replace(FAST, allow_private=False))
    allowing = await hooks_server()
    async with http_for(strict) as http:
        for url in (receiver.url("/x"), f"http://localhost:{receiver.port}/x", "http://[::1]/x"):
            response = await http.post("/api/webhooks", json={"url": url, "events": ["job.completed"]})
            assert response.status_code == 400 and response.json()["field"] == "url", (url, response.text)
        assert (await http.get("/api/webhooks")).json() == []
    async with http_for(allowing) as http:
        await subscribe(http, receiver.url("/x"))


async def test_another_owner_cannot_see_or_touch_your_endpoints(
        hooks_server: Any, receiver: Receiver, make_key: MakeKey) -> None:
    server = await hooks_server(access="owners")
    async with http_for(server, await make_key("alice")) as alice, http_for(server, await make_key("bob")) as bob:
        mine = await subscribe(alice, receiver.url("/alice"))
        theirs = await subscribe(bob, receiver.url("/bob"))
        await touch(alice, (await new_project(alice))["id"])
        await touch(bob, (await new_project(bob))["id"])
        [delivery] = await _all_delivered(alice, mine["id"], 1)
        await _all_delivered(bob, theirs["id"], 1)
        assert len(receiver.on("/alice")) == len(receiver.on("/bob")) == 1  # each hears only its own owner

        assert [endpoint["id"] for endpoint in (await bob.get("/api/webhooks")).json()] == [theirs["id"]]
        base = f"/api/webhooks/{mine['id']}"
        for method, path in (("GET", base), ("GET", f"{base}/deliveries"), ("POST", f"{base}/rotate"),
                             ("POST", f"{base}/deliveries/{delivery['id']}/redeliver"), ("DELETE", base)):
            response = await bob.request(method, path, json={} if method == "POST" else None)
            assert response.status_code == 404, (method, path, response.text)
        # Bob's own endpoint with Alice's delivery id is no way in either.
        response = await bob.post(f"/api/webhooks/{theirs['id']}/deliveries/{delivery['id']}/redeliver")
        assert response.status_code == 404, response.text

        assert (await alice.get(base)).status_code == 200
        again = await alice.post(f"{base}/deliveries/{delivery['id']}/redeliver")
        assert again.status_code == 202, again.text
        first, second = await receiver.wait("/alice", 2)
        assert first.id == second.id and first.body == second.body and verify(mine["secret"], second)
