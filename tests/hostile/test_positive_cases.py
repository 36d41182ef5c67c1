"""What random data cannot reach, checked against the document by Schemathesis all the same.

Generated names never hit a file that exists, generated ids never hit a project or a job,
and random bytes are never a video. So: the media operations are fuzzed again with
``filename`` fixed to a real video in MEDIA_DIR (every other parameter generated), and the
success answers of upload, tus, projects and jobs are driven by hand, each response
validated by Schemathesis's checks (status documented, content type, headers, body schema).
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.hostile.conftest import ThreadedServer
from tests.hostile.schemathesis_setup import load_schema

VIDEO = "clip.mp4"
TUS = {"Tus-Resumable": "1.0.0"}

media = load_schema(parameters={"path.filename": VIDEO}).include(path_regex=r"\{filename\}")
# The hand-driven cases below assert their own statuses (some are refusals on purpose: a stale
# If-Match, a finished job); Schemathesis checks everything else about each answer.
driven = load_schema(checks={"positive_data_acceptance": {"enabled": False}})


@pytest.fixture
def video_server(threaded_server: ThreadedServer, clip: Path) -> Iterator[ThreadedServer]:
    shutil.copy(clip, threaded_server.app.settings.media_path / VIDEO)
    yield threaded_server


@media.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_media_operations_on_a_real_video(case: schemathesis.Case, video_server: ThreadedServer) -> None:
    case.call_and_validate(base_url=video_server.base_url)


def call(server: ThreadedServer, method: str, path: str, expected: int, **case: Any) -> Any:
    """One hand-made case of ``method path``, sent and validated; the response."""
    operation = driven[path][method]
    response = operation.Case(**case).call_and_validate(base_url=server.base_url)
    assert response.status_code == expected, (method, path, response.status_code, response.text[:300])
    return response


def first(response: Any, name: str) -> str:
    """A response header (Schemathesis keeps every header as a list of its values)."""
    return response.headers[name][0]


def test_upload_and_tus_store_a_video_as_documented(video_server: ThreadedServer, clip: Path) -> None:
    data = clip.read_bytes()
    stored = call(video_server, "POST", "/api/upload", 201, body={"video": data}, media_type="multipart/form-data")
    assert stored.json()["metadata"]["duration"] > 0
    call(video_server, "OPTIONS", "/api/uploads/", 204)
    metadata = ",".join(f"{key} {base64.b64encode(value).decode()}"
                        for key, value in (("filename", b"clip.mp4"), ("filetype", b"video/mp4")))
    created = call(video_server, "POST", "/api/uploads/", 201,
                   headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": metadata})
    upload_id = first(created, "location").rsplit("/", 1)[1]
    ids = {"id": upload_id}
    assert call(video_server, "GET", "/api/uploads/{id}", 200, path_parameters=ids, headers=TUS).json()["offset"] == 0
    half = len(data) // 2
    offset = {"Content-Type": "application/offset+octet-stream"}
    call(video_server, "PATCH", "/api/uploads/{id}", 204, path_parameters=ids, body=data[:half],
         headers={**TUS, **offset, "Upload-Offset": "0"}, media_type="application/offset+octet-stream")
    call(video_server, "PATCH", "/api/uploads/{id}", 409, path_parameters=ids, body=data[half:],
         headers={**TUS, **offset, "Upload-Offset": "0"}, media_type="application/offset+octet-stream")
    call(video_server, "PATCH", "/api/uploads/{id}", 204, path_parameters=ids, body=data[half:],
         headers={**TUS, **offset, "Upload-Offset": str(half)}, media_type="application/offset+octet-stream")
    done = call(video_server, "GET", "/api/uploads/{id}", 200, path_parameters=ids, headers=TUS).json()
    assert done["complete"] and done["metadata"]["duration"] > 0
    call(video_server, "DELETE", "/api/uploads/{id}", 204, path_parameters=ids, headers=TUS)
    call(video_server, "GET", "/api/uploads/{id}", 404, path_parameters=ids, headers=TUS)


def test_serving_a_video_as_documented(video_server: ThreadedServer) -> None:
    name = {"filename": VIDEO}
    whole = call(video_server, "GET", "/videos/{filename}", 200, path_parameters=name)
    call(video_server, "GET", "/videos/{filename}", 206, path_parameters=name, headers={"Range": "bytes=0-99"})
    call(video_server, "GET", "/videos/{filename}", 416, path_parameters=name, headers={"Range": "bytes=999999999-"})
    call(video_server, "GET", "/videos/{filename}", 304, path_parameters=name,
         headers={"If-None-Match": first(whole, "etag")})
    sprite = call(video_server, "GET", "/api/videos/{filename}/thumbnails.jpg", 200, path_parameters=name)
    call(video_server, "GET", "/api/videos/{filename}/thumbnails.jpg", 304, path_parameters=name,
         headers={"If-None-Match": first(sprite, "etag")})
    call(video_server, "GET", "/api/videos/{filename}/thumbnails.jpg", 206, path_parameters=name,
         headers={"Range": "bytes=-10"})


def test_projects_as_documented(video_server: ThreadedServer) -> None:
    body = {"name": "p", "videoFilename": VIDEO, "videoUrl": f"/videos/{VIDEO}",
            "timelineState": {"currentTime": 1, "zoom": 2, "markers": [{"time": 1, "label": "a"}],
                              "edits": [{"type": "trim", "start": 0, "end": 1}, {"type": "fade", "in": 0.5}]}}
    project = call(video_server, "POST", "/api/projects", 201, body=body, media_type="application/json").json()
    ids = {"id": project["id"]}
    call(video_server, "GET", "/api/projects", 200, query={"limit": 1})
    call(video_server, "GET", "/api/projects/{id}", 200, path_parameters=ids)
    call(video_server, "PUT", "/api/projects/{id}", 200, path_parameters=ids, body={"name": "q"},
         media_type="application/json", headers={"If-Match": f'"{project["version"]}"'})
    stale = call(video_server, "PUT", "/api/projects/{id}", 412, path_parameters=ids, body={"name": "r"},
                 media_type="application/json", headers={"If-Match": f'"{project["version"]}"'})
    assert stale.json()["name"] == "q" and stale.json()["error"]
    call(video_server, "DELETE", "/api/projects/{id}", 204, path_parameters=ids)
    call(video_server, "GET", "/api/projects/{id}", 404, path_parameters=ids)


def test_jobs_as_documented(video_server: ThreadedServer) -> None:
    """No workers run here, so a job stays queued: cancelled at once (200), then finished (409)."""
    for path, body in (("/api/edit/trim", {"filename": VIDEO, "startTime": 0, "endTime": 1, "mode": "accurate"}),
                       ("/api/edit/split", {"filename": VIDEO, "splitTime": 1}),
                       ("/api/edit/process", {"filename": VIDEO, "edits": [{"type": "speed", "factor": 2}],
                                              "output": "fast"})):
        accepted = call(video_server, "POST", path, 202, body=body, media_type="application/json",
                        headers={"Idempotency-Key": path}).json()
        replayed = call(video_server, "POST", path, 202, body=body, media_type="application/json",
                        headers={"Idempotency-Key": path})
        assert replayed.json()["operationId"] == accepted["operationId"]
        job = {"operationId": accepted["operationId"]}
        call(video_server, "GET", "/api/jobs/{operationId}", 200, path_parameters=job)
        call(video_server, "POST", "/api/jobs/{operationId}/cancel", 200, path_parameters=job)
        call(video_server, "POST", "/api/jobs/{operationId}/cancel", 409, path_parameters=job)


def test_session_as_documented(video_server: ThreadedServer) -> None:
    call(video_server, "GET", "/api/session", 200)
    call(video_server, "PUT", "/api/session/settings", 200, body={"theme": "dark", "language": "pt-BR"},
         media_type="application/json")
