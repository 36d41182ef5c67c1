"""The operations REST API and WebSocket progress, end to end: server, hub, workers, PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from server.ws.client import WsClient, WsMessage
from tests.jobs.conftest import finished_over_http, media_files


def _http(server: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=30)


def _ws(server: Any) -> WsClient:
    return WsClient(f"ws://127.0.0.1:{server.port}/ws", reconnect=False)


async def _follow(client: WsClient, operation_id: str, timeout: float = 30) -> list[WsMessage]:
    """This operation's messages, up to and including its complete/error."""
    seen: list[WsMessage] = []
    while True:
        message = await client.recv_type("progress", "complete", "error", timeout=timeout)
        if message.data.get("operationId") != operation_id:
            continue
        seen.append(message)
        if message.type in ("complete", "error"):
            return seen


def _assert_progress_then_complete(messages: list[WsMessage]) -> None:
    progress = [m.data["progress"] for m in messages if m.type == "progress"]
    assert progress == sorted(progress), progress
    assert progress.count(100) == 1 and progress[-1] == 100
    assert [m.type for m in messages].count("complete") == 1 and messages[-1].type == "complete"


async def test_trim_over_rest_with_progress_on_the_websocket(jobs_server: Any, clip: str, media_dir: Path) -> None:
    server = await jobs_server(workers=1)
    async with _http(server) as http, _ws(server) as ws:
        await ws.recv_type("ping", timeout=5)
        response = await http.post("/api/edit/trim", json={"filename": clip, "startTime": 0.5, "endTime": 1.5})
        assert response.status_code == 202
        accepted = response.json()
        operation_id = accepted["operationId"]
        assert operation_id.startswith("trim-")
        assert accepted == {"operationId": operation_id, "operation": "trim", "status": "queued"}

        messages = await _follow(ws, operation_id)
        _assert_progress_then_complete(messages)
        assert {m.data["operation"] for m in messages if m.type == "progress"} == {"trim"}
        result = messages[-1].data["result"]
        assert set(result) == {"filename", "url", "duration", "cut"}
        assert result["url"] == f"/videos/{result['filename']}" and (media_dir / result["filename"]).is_file()
        assert set(result["cut"]) == {"start", "end"}

        job = await finished_over_http(http, operation_id)
        assert job["status"] == "done" and job["progress"] == 100 and job["result"] == result
        assert job["operation"] == "trim" and job["attempts"] == 1

        ready = (await http.get("/readyz")).json()
        assert ready["jobs"] == {"events": "listening", "workers": 1, "workerRestarts": 0}


async def test_split_and_process_results(jobs_server: Any, clip: str) -> None:
    server = await jobs_server(workers=1)
    async with _http(server) as http:
        split = (await http.post("/api/edit/split", json={"filename": clip, "splitTime": 1.0})).json()
        project = (await http.post("/api/projects", json={
            "name": "p", "videoFilename": clip, "videoUrl": f"/videos/{clip}",
            "timelineState": {"edits": [{"type": "cut", "start": 0.5, "end": 1.0}]}})).json()
        by_project = (await http.post("/api/edit/process", json={"projectId": project["id"]})).json()
        by_edits = (await http.post("/api/edit/process", json={
            "filename": clip, "edits": [{"type": "speed", "factor": 2}], "output": "final.mp4"})).json()
        assert split["operation"] == "split" and by_project["operation"] == by_edits["operation"] == "process"

        parts = (await finished_over_http(http, split["operationId"]))["result"]
        assert [p["filename"] for p in parts["parts"]][0] == parts["filename"]
        assert len(parts["parts"]) == 2 and all(set(p) == {"filename", "url", "duration"} for p in parts["parts"])
        cut = await finished_over_http(http, by_project["operationId"])
        assert cut["status"] == "done" and abs(cut["result"]["duration"] - 1.5) < 0.1
        fast = await finished_over_http(http, by_edits["operationId"])
        assert fast["status"] == "done" and abs(fast["result"]["duration"] - 1.0) < 0.1
        assert fast["result"]["filename"].startswith("final-process-")


async def test_bad_requests_name_the_field(jobs_server: Any, clip: str) -> None:
    server = await jobs_server()
    async with _http(server) as http:
        async def error(path: str, body: Any, status: int = 400) -> dict[str, Any]:
            response = await http.post(path, json=body)
            assert response.status_code == status, response.text
            return response.json()

        assert (await error("/api/edit/trim", {"startTime": 0, "endTime": 1}))["field"] == "filename"
        assert (await error("/api/edit/trim", {"filename": clip, "endTime": 1}))["field"] == "startTime"
        assert (await error("/api/edit/trim", {"filename": clip, "startTime": 2, "endTime": 1}))["field"] == "endTime"
        assert (await error("/api/edit/trim", {"filename": clip, "startTime": 0, "endTime": 1,
                                               "mode": "fast"}))["field"] == "mode"
        assert (await error("/api/edit/trim", {"filename": "../etc/passwd", "startTime": 0,
                                               "endTime": 1}))["field"] == "filename"
        assert "not found" in (await error("/api/edit/trim", {"filename": "nope.mp4", "startTime": 0,
                                                              "endTime": 1}, 404))["error"]
        assert (await error("/api/edit/split", {"filename": clip, "splitTime": "1"}))["field"] == "splitTime"
        assert (await error("/api/edit/process", {"filename": clip, "edits": [
            {"type": "speed", "factor": 9}]}))["field"] == "edits[0].factor"
        assert (await error("/api/edit/process", {"filename": clip}))["field"] == "edits"
        # /videos could not serve a result whose name /videos refuses: same rule, refused up front.
        assert (await error("/api/edit/process", {"filename": clip, "edits": [],
                                                  "output": "my cut (1)"}))["field"] == "output"
        assert (await error("/api/edit/process", {}))["field"] == "projectId"
        assert (await error("/api/edit/process", {"projectId": "7"}))["field"] == "projectId"
        await error("/api/edit/process", {"projectId": 987654}, 404)
        assert (await error("/api/edit/process", [1, 2]))["error"]
        assert (await http.get("/api/jobs/trim-unknown")).status_code == 404
        assert (await http.post("/api/jobs/trim-unknown/cancel")).status_code == 404


async def test_idempotency_key_returns_the_same_operation(jobs_server: Any, clip: str) -> None:
    server = await jobs_server()
    async with _http(server) as http:
        body = {"filename": clip, "startTime": 0, "endTime": 1}
        first = await http.post("/api/edit/trim", json=body, headers={"Idempotency-Key": "abc"})
        again = await http.post("/api/edit/trim", json=body, headers={"Idempotency-Key": "abc"})
        other = await http.post("/api/edit/trim", json=body)
        assert first.status_code == again.status_code == other.status_code == 202
        assert first.json()["operationId"] == again.json()["operationId"] != other.json()["operationId"]
        assert again.headers["idempotent-replayed"] == "true"


async def test_cancel_queued_then_conflict_when_finished(jobs_server: Any, clip: str) -> None:
    server = await jobs_server()  # no workers: the job stays queued
    async with _http(server) as http:
        operation_id = (await http.post("/api/edit/trim", json={"filename": clip, "startTime": 0,
                                                                "endTime": 1})).json()["operationId"]
        cancelled = await http.post(f"/api/jobs/{operation_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        job = (await http.get(f"/api/jobs/{operation_id}")).json()
        assert job["status"] == "cancelled" and job["error"] == "The operation was cancelled"
        again = await http.post(f"/api/jobs/{operation_id}/cancel")
        assert again.status_code == 409 and again.json()["jobStatus"] == "cancelled"


async def test_cancel_running_over_rest(jobs_server: Any, slow_clip: str, media_dir: Path) -> None:
    from tests.jobs.conftest import SLOW_EDITS

    server = await jobs_server(workers=1)
    async with _http(server) as http, _ws(server) as ws:
        operation_id = (await http.post("/api/edit/process", json={"filename": slow_clip,
                                                                   "edits": SLOW_EDITS})).json()["operationId"]
        while True:
            message = await ws.recv_type("progress", timeout=30)
            if message.data["operationId"] == operation_id and message.data["progress"] > 0:
                break
        response = await http.post(f"/api/jobs/{operation_id}/cancel")
        assert response.status_code == 202 and response.json()["cancelRequested"] is True
        final = (await _follow(ws, operation_id))[-1]
        assert final.type == "error" and final.data == {"operationId": operation_id,
                                                        "error": "The operation was cancelled"}
        assert (await finished_over_http(http, operation_id))["status"] == "cancelled"
        assert media_files(media_dir) == {slow_clip}


async def test_queued_job_survives_a_restart_and_late_subscribers_get_the_result(
        jobs_server: Any, clip: str) -> None:
    first = await jobs_server()  # no workers
    async with _http(first) as http:
        operation_id = (await http.post("/api/edit/trim", json={"filename": clip, "startTime": 0,
                                                                "endTime": 1})).json()["operationId"]
    await first.stop()

    second = await jobs_server(workers=1)
    async with _http(second) as http:
        job = await finished_over_http(http, operation_id)
        assert job["status"] == "done"
    await second.stop()

    third = await jobs_server()  # knows the job only from the table
    async with _ws(third) as ws:
        await ws.subscribe([operation_id])
        message = await ws.recv_type("complete", "error", timeout=10)
        assert message.type == "complete" and message.data == {"operationId": operation_id,
                                                               "result": job["result"]}


async def test_job_events_after_the_listen_connection_was_cut_still_arrive(
        jobs_server: Any, clip: str, migrated_dsn: str) -> None:
    import asyncpg

    server = await jobs_server()  # no workers: the job stays queued
    async with _http(server) as http, _ws(server) as ws:
        await ws.recv_type("ping", timeout=5)
        admin = await asyncpg.connect(migrated_dsn)
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = 'nve-job-events'")
        finally:
            await admin.close()
        operation_id = (await http.post("/api/edit/trim", json={"filename": clip, "startTime": 0,
                                                                "endTime": 1})).json()["operationId"]
        await http.post(f"/api/jobs/{operation_id}/cancel")
        final = (await _follow(ws, operation_id))[-1]
        assert final.type == "error" and final.data["error"] == "The operation was cancelled"


async def test_progress_reaches_followers_on_another_node(jobs_server: Any, slow_clip: str) -> None:
    from tests.jobs.conftest import SLOW_EDITS

    running = await jobs_server(workers=1)
    other = await jobs_server()  # same database, no workers: it only relays
    async with _http(running) as http, _ws(other) as ws:
        await ws.recv_type("ping", timeout=5)
        operation_id = (await http.post("/api/edit/process", json={"filename": slow_clip,
                                                                   "edits": SLOW_EDITS})).json()["operationId"]
        await ws.subscribe([operation_id])
        messages = await _follow(ws, operation_id)
    _assert_progress_then_complete(messages)
    assert len({m.data["progress"] for m in messages if m.type == "progress"}) > 5
    assert messages[-1].data["result"]["filename"] == f"{operation_id}.mp4"
