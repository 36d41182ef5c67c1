"""The Projects REST API end to end: a real server, real PostgreSQL, a real HTTP client."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

VALID = {"name": "My Video Project", "videoFilename": "video-123.mp4", "videoUrl": "/videos/video-123.mp4"}


@pytest.fixture
async def client(server):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        yield http


async def create(client: httpx.AsyncClient, **fields) -> dict:
    response = await client.post("/api/projects", json={**VALID, **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_returns_the_stored_row(client):
    response = await client.post("/api/projects", json={
        **VALID, "description": "Sample project",
        "timelineState": {"currentTime": 0, "zoom": 1.0, "markers": [], "custom": {"kept": True}}})
    assert response.status_code == 201
    row = response.json()
    assert set(row) == {"id", "name", "description", "video_filename", "video_url", "timeline_state",
                        "version", "created_at", "updated_at"}
    assert row["name"] == "My Video Project" and row["description"] == "Sample project"
    assert row["video_filename"] == "video-123.mp4" and row["video_url"] == "/videos/video-123.mp4"
    assert row["timeline_state"]["custom"] == {"kept": True}
    assert response.headers["etag"] == f'"{row["version"]}"'
    created = dt.datetime.fromisoformat(row["created_at"])
    assert created.tzinfo is not None
    assert response.headers["content-type"] == "application/json"


async def test_create_defaults(client):
    row = await create(client)
    assert row["description"] is None and row["timeline_state"] == {} and row["version"] == 1


@pytest.mark.parametrize("body, missing", [
    ({}, "name, videoFilename, videoUrl"),
    ({"name": "x"}, "videoFilename, videoUrl"),
    ({"videoFilename": "a.mp4"}, "name, videoUrl"),
    ({"name": "x", "videoFilename": "a.mp4"}, "videoUrl"),
    ({"name": "", "videoFilename": "a.mp4", "videoUrl": "/v"}, "name"),
    ({"name": None, "videoFilename": "a.mp4", "videoUrl": "/v"}, "name"),
])
async def test_missing_required_fields_are_listed_in_order(client, body, missing):
    response = await client.post("/api/projects", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": f"Missing required fields: {missing}"}


@pytest.mark.parametrize("override, field", [
    ({"name": 5}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"videoFilename": ["a"]}, "videoFilename"),
    ({"videoUrl": {"a": 1}}, "videoUrl"),
    ({"description": 3}, "description"),
    ({"timelineState": []}, "timelineState"),
    ({"timelineState": {"currentTime": -1}}, "timelineState.currentTime"),
    ({"timelineState": {"zoom": 0}}, "timelineState.zoom"),
    ({"timelineState": {"markers": [{"time": 1}]}}, "timelineState.markers[0].label"),
    ({"timelineState": {"edits": [{"type": "blur"}]}}, "timelineState.edits[0].type"),
    ({"timelineState": {"edits": [{"type": "trim", "start": 0, "end": 2}, {"type": "speed", "factor": 9}]}},
     "timelineState.edits[1].factor"),
])
async def test_invalid_fields_are_named(client, override, field):
    response = await client.post("/api/projects", json={**VALID, **override})
    assert response.status_code == 400
    body = response.json()
    assert field in body["error"] and body["field"] == field


async def test_a_255_character_name_is_accepted(client):
    assert (await create(client, name="n" * 255))["name"] == "n" * 255


async def test_malformed_json_is_400(client):
    response = await client.post("/api/projects", content=b"{not json",
                                 headers={"content-type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["error"]


async def test_body_over_the_json_limit_is_413(client):
    response = await client.post("/api/projects", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413 and "error" in response.json()


async def test_get_by_id(client):
    row = await create(client)
    response = await client.get(f"/api/projects/{row['id']}")
    assert response.status_code == 200 and response.json() == row
    assert response.headers["etag"] == '"1"'


async def test_get_with_if_none_match_of_the_current_version_is_304(client):
    row = await create(client)
    url = f"/api/projects/{row['id']}"
    for tag in ('"1"', 'W/"1"', '"0", "1"', "*"):
        response = await client.get(url, headers={"if-none-match": tag})
        assert response.status_code == 304 and response.content == b"", tag
        assert response.headers["etag"] == '"1"'
    assert (await client.head(url, headers={"if-none-match": '"1"'})).status_code == 304
    await client.put(url, json={"name": "v2"})
    changed = await client.get(url, headers={"if-none-match": '"1"'})
    assert changed.status_code == 200 and changed.json()["name"] == "v2" and changed.headers["etag"] == '"2"'
    # Another owner's or an unknown id is still a 404, never a 304.
    assert (await client.get("/api/projects/999999", headers={"if-none-match": "*"})).status_code == 404


@pytest.mark.parametrize("path, status", [
    ("/api/projects/999999", 404), ("/api/projects/0", 404), ("/api/projects/99999999999", 404),
    ("/api/projects/abc", 400), ("/api/projects/1.5", 400),
])
async def test_get_unknown_or_malformed_id(client, path, status):
    response = await client.get(path)
    assert response.status_code == status and response.json()["error"]


async def test_list_is_ordered_by_updated_at_desc(client):
    first = await create(client, name="first")
    second = await create(client, name="second")
    await client.put(f"/api/projects/{first['id']}", json={"name": "first, touched"})
    names = [row["name"] for row in (await client.get("/api/projects")).json()]
    assert names == ["first, touched", "second"]
    assert second["id"] > first["id"]


async def test_list_pages_with_a_cursor(client):
    for index in range(7):
        await create(client, name=f"p{index}")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/projects", params=params)
        assert response.status_code == 200
        seen += [row["name"] for row in response.json()]
        pages += 1
        cursor = response.headers.get("x-next-cursor")
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"p{index}" for index in reversed(range(7))]


async def test_list_default_limit_is_50_and_the_maximum_200(client):
    await asyncio.gather(*(create(client, name=f"p{i}") for i in range(205)))
    response = await client.get("/api/projects")
    assert len(response.json()) == 50 and "x-next-cursor" in response.headers
    largest = await client.get("/api/projects", params={"limit": "1000"})
    assert len(largest.json()) == 200 and "x-next-cursor" in largest.headers


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=-3", "limit"), ("limit=abc", "limit"), ("cursor=%%%", "cursor"),
    ("cursor=bm90LWEtY3Vyc29y", "cursor"),
])
async def test_list_rejects_bad_paging(client, query, field):
    response = await client.get(f"/api/projects?{query}")
    assert response.status_code == 400 and response.json()["field"] == field


async def test_put_changes_only_given_fields(client):
    row = await create(client, description="keep me", timelineState={"zoom": 2})
    response = await client.put(f"/api/projects/{row['id']}", json={"name": "renamed"})
    assert response.status_code == 200
    updated = response.json()
    assert updated["name"] == "renamed" and updated["description"] == "keep me"
    assert updated["timeline_state"] == {"zoom": 2}
    assert updated["version"] == 2 and response.headers["etag"] == '"2"'
    assert updated["updated_at"] > row["updated_at"] and updated["created_at"] == row["created_at"]


async def test_put_timeline_state(client):
    row = await create(client)
    state = {"currentTime": 30.5, "zoom": 2.0, "markers": [{"time": 10, "label": "Intro"}],
             "edits": [{"type": "trim", "start": 1, "end": 5}, {"type": "fade", "in": 0.5}]}
    response = await client.put(f"/api/projects/{row['id']}", json={"timelineState": state})
    assert response.json()["timeline_state"] == state


async def test_put_with_a_current_if_match_succeeds_and_a_stale_one_is_412(client):
    row = await create(client)
    url = f"/api/projects/{row['id']}"
    ok = await client.put(url, json={"name": "v2"}, headers={"if-match": '"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    stale = await client.put(url, json={"name": "lost update"}, headers={"if-match": '"1"'})
    assert stale.status_code == 412
    body = stale.json()
    assert body["error"] and body["name"] == "v2" and body["version"] == 2
    assert stale.headers["etag"] == '"2"'
    assert (await client.get(url)).json()["name"] == "v2"


async def test_put_if_match_star_and_garbage(client):
    row = await create(client)
    url = f"/api/projects/{row['id']}"
    assert (await client.put(url, json={"name": "a"}, headers={"if-match": "*"})).status_code == 200
    assert (await client.put(url, json={"name": "b"}, headers={"if-match": "nonsense"})).status_code == 412


async def test_concurrent_puts_with_the_same_etag_let_exactly_one_win(client):
    row = await create(client)
    url = f"/api/projects/{row['id']}"
    results = await asyncio.gather(*(
        client.put(url, json={"name": f"writer {i}"}, headers={"if-match": '"1"'}) for i in range(8)))
    assert sorted(r.status_code for r in results) == [200] + [412] * 7


async def test_put_validation(client):
    row = await create(client)
    url = f"/api/projects/{row['id']}"
    for body, field in [({"name": ""}, "name"), ({"name": 1}, "name"),
                        ({"timelineState": {"edits": [{"type": "volume", "gain": 5}]}},
                         "timelineState.edits[0].gain")]:
        response = await client.put(url, json=body)
        assert response.status_code == 400 and response.json()["field"] == field
    assert (await client.get(url)).json()["version"] == 1


async def test_put_unknown_is_404(client):
    assert (await client.put("/api/projects/4242", json={"name": "x"})).status_code == 404


async def test_delete(client):
    row = await create(client)
    url = f"/api/projects/{row['id']}"
    response = await client.delete(url)
    assert response.status_code == 204 and response.content == b""
    assert (await client.get(url)).status_code == 404
    assert (await client.delete(url)).status_code == 404


async def test_unknown_path_and_wrong_method(client):
    missing = await client.get("/api/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]
    wrong = await client.patch("/api/projects")
    assert wrong.status_code == 405 and set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


async def test_head_has_no_body(client):
    row = await create(client)
    response = await client.head(f"/api/projects/{row['id']}")
    assert response.status_code == 200 and response.content == b""
    assert int(response.headers["content-length"]) > 0


async def test_idempotency_key_makes_a_create_safe_to_retry(server) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        body = {"name": "Once", "videoFilename": "a.mp4", "videoUrl": "/videos/a.mp4"}
        first = await http.post("/api/projects", json=body, headers={"idempotency-key": "k-1"})
        again = await http.post("/api/projects", json=body, headers={"idempotency-key": "k-1"})
        other = await http.post("/api/projects", json=body, headers={"idempotency-key": "k-2"})
        assert first.status_code == again.status_code == other.status_code == 201
        assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json() and other.json()["id"] != first.json()["id"]
        assert len((await http.get("/api/projects")).json()) == 2
        await http.delete(f"/api/projects/{first.json()['id']}")
        anew = await http.post("/api/projects", json=body, headers={"idempotency-key": "k-1"})
        assert anew.status_code == 201 and "idempotent-replayed" not in anew.headers  # its project is gone
        assert anew.json()["id"] not in (first.json()["id"], other.json()["id"])
        too_long = await http.post("/api/projects", json=body, headers={"idempotency-key": "k" * 256})
        assert too_long.status_code == 400 and too_long.json()["field"] == "Idempotency-Key"
