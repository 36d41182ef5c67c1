"""Hostile JSON bodies against every JSON endpoint: size, depth, numbers, encoding, types.

The rules under test are server/http/request.py's (documented there and in the OpenAPI
description): 413 past 1 MiB with the connection closed; 400 with one sentence for
nesting past 64 levels, whatever the depth, and for numbers past float range, NaN,
invalid UTF-8 and U+0000; a leading BOM ignored; duplicate keys resolved last-wins;
415 for a declared Content-Type that is not JSON. Never a 500, and the server goes on.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.config import Settings
from server.http.request import MAX_JSON_DEPTH
from server.routes import document
from tests.hostile.raw import RawConnection

LIMIT = 1 << 20
DEEP_SENTENCE = f"Request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep"
PROJECT = {"name": "hostile", "videoFilename": "clip.mp4", "videoUrl": "/videos/clip.mp4"}
VIDEO = "present.mp4"
"""A file in MEDIA_DIR, so job requests get past the filename to the fields after it."""


@dataclass(frozen=True)
class Endpoint:
    """A JSON endpoint, a body it accepts as far as its JSON goes, and what that body gets."""

    method: str
    path: str
    body: dict[str, object]
    ok: int

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    Endpoint("POST", "/api/projects", PROJECT, 201),
    Endpoint("PUT", "/api/projects/{id}", {"name": "renamed"}, 200),
    Endpoint("PUT", "/api/session/settings", {"theme": "dark"}, 200),
    Endpoint("POST", "/api/edit/trim", {"filename": VIDEO, "startTime": 0, "endTime": 1}, 202),
    Endpoint("POST", "/api/edit/split", {"filename": VIDEO, "splitTime": 1}, 202),
    Endpoint("POST", "/api/edit/process", {"filename": VIDEO, "edits": []}, 202),
]
# Each test loops over the endpoints (and cases) on one server: a server per case would
# spend the run creating databases.


@pytest.fixture
async def api(start_server, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    server = await start_server(redis_url=redis_url)
    (server.app.settings.media_path / VIDEO).write_bytes(b"not really a video, only a file")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as client:
        yield client


@pytest.fixture
async def project_id(api: httpx.AsyncClient) -> int:
    response = await api.post("/api/projects", json=PROJECT)
    assert response.status_code == 201
    return response.json()["id"]


def path_of(endpoint: Endpoint, project_id: int) -> str:
    return endpoint.path.replace("{id}", str(project_id))


async def send(api: httpx.AsyncClient, endpoint: Endpoint, project_id: int, body: bytes,
               content_type: str | None = "application/json") -> httpx.Response:
    headers = {"content-type": content_type} if content_type is not None else {}
    return await api.request(endpoint.method, path_of(endpoint, project_id), content=body, headers=headers)


def encoded(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def padded_to(body: dict[str, object], size: int) -> bytes:
    """``body`` with an extra string field that makes it exactly ``size`` bytes (endpoints ignore it,
    except session settings, which refuse it by name: parsed either way)."""
    empty = encoded({**body, "pad": ""})
    return encoded({**body, "pad": "x" * (size - len(empty))})


MARKER = "\u2603splice here\u2603"


def spliced(body: dict[str, object], literal: str) -> bytes:
    """``body`` as JSON with the string :data:`MARKER` replaced by the JSON text ``literal``."""
    return encoded(body).replace(json.dumps(MARKER).encode(), literal.encode())


def nested(kind: str, depth: int) -> str:
    """``depth`` levels of arrays (``[[...]]``) or objects (``{"a":{"a":...}}``) as JSON text."""
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


# -- size -----------------------------------------------------------------------------------


async def test_a_body_of_exactly_the_limit_is_read(api: httpx.AsyncClient, project_id: int) -> None:
    for endpoint in ENDPOINTS:
        body = padded_to(endpoint.body, LIMIT)
        assert len(body) == LIMIT
        response = await send(api, endpoint, project_id, body)
        if endpoint.path == "/api/session/settings":
            assert response.status_code == 400 and response.json()["field"] == "pad", endpoint
        else:
            assert response.status_code == endpoint.ok, (endpoint, response.text)


async def test_a_body_over_the_limit_is_413_and_the_connection_closes(api: httpx.AsyncClient,
                                                                       project_id: int) -> None:
    for endpoint in ENDPOINTS:
        async with await RawConnection.open(api.base_url.port) as connection:
            # Declared, not sent: the answer must come before the server reads a byte of it.
            response = await connection.request(endpoint.method, path_of(endpoint, project_id),
                                                headers={"Content-Type": "application/json"},
                                                declared_length=LIMIT + 1)
            assert response.status == 413, endpoint
            assert response.json()["limit"] == LIMIT and str(LIMIT) in response.json()["error"]
            assert response.headers.get("connection") == "close"
            assert await connection.closed_by_server(), endpoint
    assert (await api.get("/healthz")).status_code == 200


async def test_a_whole_body_over_the_limit_still_gets_its_413(api: httpx.AsyncClient) -> None:
    """Sent in full by a client that does not wait: the answer arrives, then the connection ends."""
    async with await RawConnection.open(api.base_url.port) as connection:
        response = await connection.request("POST", "/api/projects", headers={"Content-Type": "application/json"},
                                            body=padded_to(PROJECT, LIMIT + 1))
        assert response.status == 413 and response.json()["limit"] == LIMIT
        assert await connection.closed_by_server()
    assert (await api.get("/api/projects")).json() == []


async def test_a_streamed_body_over_the_limit_is_413(api: httpx.AsyncClient) -> None:
    """Chunked, so no length warns the server: it counts, stops at the limit and says so."""
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name":"'
        for _ in range(LIMIT // 65536 + 1):
            yield b"x" * 65536

    response = await api.post("/api/projects", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["limit"] == LIMIT


# -- depth ----------------------------------------------------------------------------------


def deep_places(endpoint: Endpoint, value: str) -> list[bytes]:
    """Bodies of ``endpoint`` carrying the JSON text ``value`` in a field it ignores (so only the
    depth rule can stop it) and, for projects, in each part of timelineState."""
    places: list[dict[str, object]] = [{**endpoint.body, "deep": MARKER}]
    if "/api/projects" in endpoint.path:
        places += [{**endpoint.body, "timelineState": state} for state in (
            {"ui": MARKER}, {"markers": MARKER}, {"edits": MARKER},
            {"markers": [{"time": 1, "label": "x", "more": MARKER}]})]
    return [spliced(place, value) for place in places]


async def test_deep_nesting_is_a_400_at_any_depth(api: httpx.AsyncClient, project_id: int) -> None:
    for endpoint in ENDPOINTS:
        for kind in ("array", "object"):
            for depth in (MAX_JSON_DEPTH + 1, 1_000, 100_000):
                for body in deep_places(endpoint, nested(kind, depth)):
                    response = await send(api, endpoint, project_id, body)
                    assert response.status_code == 400, (endpoint, kind, depth, body[:80], response.text)
                    assert response.json()["error"] == DEEP_SENTENCE, (endpoint, body[:80])


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_timeline_state_nests_up_to_the_limit_and_not_past_it(api: httpx.AsyncClient, project_id: int,
                                                                    method: str) -> None:
    url = "/api/projects" if method == "POST" else f"/api/projects/{project_id}"
    fields = PROJECT if method == "POST" else {}
    # The body is level 1 and timelineState level 2, so its `ui` value may nest 62 more.
    deepest = json.loads(nested("object", MAX_JSON_DEPTH - 2))
    accepted = await api.request(method, url, json={**fields, "timelineState": {"ui": deepest}})
    assert accepted.status_code in (200, 201), accepted.text
    stored = (await api.get(f"/api/projects/{accepted.json()['id']}")).json()
    assert stored["timeline_state"]["ui"] == deepest
    refused = await api.request(method, url, json={**fields, "timelineState": {"ui": {"a": deepest}}})
    assert refused.status_code == 400 and refused.json()["error"] == DEEP_SENTENCE


async def test_hostile_bodies_cost_bounded_memory(api: httpx.AsyncClient) -> None:
    """A megabyte of the deepest and of the widest JSON: the server allocates a bounded multiple of it."""
    half = LIMIT // 2 - 16
    deepest = ("[" * half + "]" * half).encode()
    widest = ("[" + ",".join(["[]"] * (LIMIT // 3 - 2)) + "]").encode()
    tracemalloc.start()
    try:
        for body in (deepest, widest):
            assert len(body) <= LIMIT
            response = await api.post("/api/projects", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # About 25 MiB: the widest body is 350 000 empty lists, 56 bytes each, plus the client's copy.
    assert peak < 64 * LIMIT, f"handling 1 MiB bodies peaked at {peak / LIMIT:.0f} MiB"
    assert (await api.get("/healthz")).status_code == 200


# -- numbers --------------------------------------------------------------------------------

BIG_INTEGER = "1" + "0" * 400  # valid JSON, past float range
NUMBERS = [
    ("POST", "/api/projects", "timelineState.currentTime", "1e400", "cannot read"),
    ("POST", "/api/projects", "timelineState.currentTime", BIG_INTEGER, "timelineState.currentTime"),
    ("POST", "/api/projects", "timelineState.currentTime", "1" * 5000, "cannot read"),
    ("POST", "/api/projects", "timelineState.zoom", "NaN", "not valid JSON"),
    ("POST", "/api/projects", "timelineState.zoom", "Infinity", "not valid JSON"),
    ("POST", "/api/projects", "timelineState.zoom", "-Infinity", "not valid JSON"),
    ("POST", "/api/edit/trim", "startTime", BIG_INTEGER, "startTime"),
    ("POST", "/api/edit/split", "splitTime", BIG_INTEGER, "splitTime"),
    ("PUT", "/api/session/settings", "volume", BIG_INTEGER, "volume"),
    ("PUT", "/api/session/settings", "timelineZoom", "1e400", "cannot read"),
]


def with_literal(base: dict[str, object], dotted: str, literal: str) -> bytes:
    """``base`` with ``dotted`` (``a.b``) set to the JSON text ``literal``, written as is."""
    copy: dict[str, object] = json.loads(json.dumps(base))
    target = copy
    *parents, leaf = dotted.split(".")
    for key in parents:
        target = target.setdefault(key, {})  # type: ignore[assignment]
    target[leaf] = MARKER
    return spliced(copy, literal)


async def test_numbers_json_allows_but_no_field_can_hold_are_400(api: httpx.AsyncClient) -> None:
    for method, path, field, literal, said in NUMBERS:
        base = next(e.body for e in ENDPOINTS if e.path == path)
        response = await api.request(method, path, content=with_literal(base, field, literal),
                                     headers={"content-type": "application/json"})
        assert response.status_code == 400, (path, field, literal[:20], response.text)
        assert said in response.json()["error"], (path, field, literal[:20], response.text)


async def test_a_tiny_number_underflows_to_zero(api: httpx.AsyncClient) -> None:
    body = with_literal(PROJECT, "timelineState.currentTime", "1e-400")
    response = await api.post("/api/projects", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 201 and response.json()["timeline_state"]["currentTime"] == 0


async def test_an_integer_field_takes_an_integral_float(api: httpx.AsyncClient) -> None:
    """JSON has one number type: 2.0 is the integer 2 (as JSON Schema's "integer" says), 2.5 is not."""
    edits = [{"type": "scale", "width": 640.0, "height": -1.0}, {"type": "crop", "x": 0.0, "y": 8.0,
                                                                 "width": 16.0, "height": 16}]
    created = await api.post("/api/projects", json={**PROJECT, "timelineState": {"edits": edits}})
    assert created.status_code == 201, created.text
    scale, crop = created.json()["timeline_state"]["edits"]
    assert [type(scale["width"]), type(scale["height"]), type(crop["x"]), type(crop["y"])] == [int] * 4
    fraction = await api.post("/api/projects", json={**PROJECT, "timelineState": {"edits": [
        {"type": "scale", "width": 640.5, "height": -1}]}})
    assert fraction.status_code == 400 and fraction.json()["field"] == "timelineState.edits[0].width"
    by_id = await api.post("/api/edit/process", json={"projectId": float(created.json()["id"])})
    assert by_id.status_code == 404 and "clip.mp4" in by_id.json()["error"]  # found the project, not its video


# -- keys, strings and encodings ------------------------------------------------------------


async def test_duplicate_keys_last_one_wins(api: httpx.AsyncClient) -> None:
    body = b'{"name":"first","name":"second","videoFilename":"a.mp4","videoUrl":"/videos/a.mp4"}'
    response = await api.post("/api/projects", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 201 and response.json()["name"] == "second"


async def test_a_utf8_byte_order_mark_is_ignored(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/projects", content=b"\xef\xbb\xbf" + encoded(PROJECT),
                              headers={"content-type": "application/json"})
    assert response.status_code == 201 and response.json()["name"] == PROJECT["name"]


INVALID_TEXT = {
    "invalid UTF-8": b'{"name":"\xff\xfe","videoFilename":"a","videoUrl":"b"}',
    "overlong UTF-8": b'{"name":"\xc0\xaf","videoFilename":"a","videoUrl":"b"}',
    "UTF-16": '{"name":"x","videoFilename":"a","videoUrl":"b"}'.encode("utf-16"),
    "lone surrogate": b'{"name":"\\ud800","videoFilename":"a","videoUrl":"b"}',
    "NUL in a value": b'{"name":"a\\u0000b","videoFilename":"a","videoUrl":"b"}',
    "NUL in a timeline key": b'{"name":"a","videoFilename":"a","videoUrl":"b","timelineState":{"k\\u0000":1}}',
    "empty": b"",
}


async def test_text_postgresql_cannot_store_or_that_is_not_utf8_is_400(api: httpx.AsyncClient) -> None:
    for case, body in INVALID_TEXT.items():
        response = await api.post("/api/projects", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, (case, response.text)
        assert response.json()["error"].startswith("Request body"), (case, response.text)
    assert (await api.get("/api/projects")).json() == []


async def test_an_escaped_backslash_before_u0000_is_plain_text(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/projects", json={**PROJECT, "name": "C:\\u0000"})
    assert response.status_code == 201 and response.json()["name"] == "C:\\u0000"


async def test_long_strings_are_refused_by_field_with_a_short_sentence(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/projects", json={**PROJECT, "name": "n" * 255})).status_code == 201
    too_long = await api.post("/api/projects", json={**PROJECT, "name": "n" * 256})
    assert too_long.status_code == 400 and too_long.json()["field"] == "name"
    huge_type = await api.post("/api/projects", json={**PROJECT, "timelineState": {
        "edits": [{"type": "t" * 500_000}]}})
    assert huge_type.status_code == 400 and huge_type.json()["field"] == "timelineState.edits[0].type"
    assert len(huge_type.content) < 500, "the error echoed the client's half megabyte"
    wrong_type = await api.post("/api/projects", json={**PROJECT, "timelineState": {"edits": [{"type": {}}]}})
    assert wrong_type.status_code == 400 and wrong_type.json()["field"] == "timelineState.edits[0].type"


# -- content types and shapes ---------------------------------------------------------------

NOT_JSON = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json",
            "application/xml", ""]


async def test_a_declared_content_type_that_is_not_json_is_415(api: httpx.AsyncClient, project_id: int) -> None:
    for endpoint in ENDPOINTS:
        for content_type in NOT_JSON:
            response = await send(api, endpoint, project_id, encoded(endpoint.body), content_type)
            assert response.status_code == 415, (endpoint, content_type, response.text)
            assert "application/json" in response.json()["error"]


async def test_json_content_types_and_none_are_read(api: httpx.AsyncClient, project_id: int) -> None:
    for endpoint in ENDPOINTS:
        for content_type in (None, "application/json; charset=utf-8", "Application/JSON",
                             "application/merge-patch+json"):
            response = await send(api, endpoint, project_id, encoded(endpoint.body), content_type)
            assert response.status_code == endpoint.ok, (endpoint, content_type, response.text)


async def test_a_body_that_is_not_one_object_is_400(api: httpx.AsyncClient, project_id: int) -> None:
    for endpoint in ENDPOINTS:
        for body in (b"[]", b'"text"', b"null", b"1", b"true", b"{", b"{}}"):
            response = await send(api, endpoint, project_id, body)
            assert response.status_code == 400 and response.json()["error"], (endpoint, body, response.text)


def test_the_limits_are_the_documented_ones(tmp_path: Path) -> None:
    """The OpenAPI description quotes these numbers; the server must enforce the same."""
    assert Settings(data_dir=tmp_path).json_body_limit == LIMIT
    description = document()["info"]["description"]
    assert f"nested at most {MAX_JSON_DEPTH} levels" in description and str(LIMIT) in description
