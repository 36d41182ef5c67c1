"""Ingest over the real API: what an upload of a real-world file becomes.

A phone's HEVC .MOV is accepted, described, and gets a browser proxy from an ``ingest``
job whose progress reaches WebSocket followers; the metadata then says where it plays.
A browser's stream-written WebM is remuxed so its header has a duration; a truncated MP4
is refused saying where its data ends, and nothing of it is kept. Checked with ffprobe.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.jobs.test_api import _follow, _http, _ws
from tests.media.realworld import build


async def _upload(http: httpx.AsyncClient, path: Path) -> httpx.Response:
    return await http.post("/api/upload", files={"video": (path.name, path.read_bytes(), "video/quicktime")})


def _ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


async def test_a_phone_video_gets_a_browser_proxy_followed_live(jobs_server: Any, media_dir: Path,
                                                              tmp_path: Path) -> None:
    server = await jobs_server(workers=1)
    source = build("phone_hevc", tmp_path)
    async with _http(server) as http, _ws(server) as ws:
        await ws.recv_type("ping", timeout=5)
        response = await _upload(http, source)
        assert response.status_code == 201, response.text
        body = response.json()
        name, meta = body["filename"], body["metadata"]
        assert meta["codec"] == "hevc" and not meta["browser_playable"]
        assert (meta["display_width"], meta["display_height"]) == (meta["height"], meta["width"])  # portrait
        preview = meta["preview"]
        assert preview == {"status": "pending", "url": f"/api/videos/{name}/preview",
                           "operationId": f"ingest-{name}"}
        assert (await http.get(preview["url"])).status_code == 404  # not made yet

        messages = await _follow(ws, preview["operationId"], timeout=60)
        assert messages[-1].type == "complete", messages[-1]
        assert {m.data["operation"] for m in messages if m.type == "progress"} == {"ingest"}
        progress = [m.data["progress"] for m in messages if m.type == "progress"]
        assert progress == sorted(progress) and progress[-1] == 100
        assert messages[-1].data["result"]["url"] == preview["url"]

        job = (await http.get(f"/api/jobs/{preview['operationId']}")).json()
        assert job["status"] == "done" and job["message"] == "Done"
        meta = (await http.get(f"/api/metadata/{name}")).json()
        assert meta["preview"]["status"] == "ready"
        served = await http.get(preview["url"])
        assert served.status_code == 200 and served.headers["content-type"] == "video/mp4"
    proxy = tmp_path / "proxy.mp4"
    proxy.write_bytes(served.content)
    probed = _ffprobe(proxy)
    video = next(s for s in probed["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == "h264" and video["height"] > video["width"]  # upright portrait
    assert {s["codec_type"] for s in probed["streams"]} == {"video", "audio"}
    assert abs(float(probed["format"]["duration"]) - meta["duration"]) < 0.1
    assert subprocess.run(["ffmpeg", "-v", "error", "-i", str(proxy), "-f", "null", "-"],
                          capture_output=True, text=True).stderr == ""


async def test_a_browser_recording_is_remuxed_with_a_duration(jobs_server: Any, media_dir: Path,
                                                            tmp_path: Path) -> None:
    server = await jobs_server(workers=0)
    source = build("browser_webm", tmp_path)
    assert "duration" not in _ffprobe(source)["format"]  # as MediaRecorder writes it
    async with _http(server) as http:
        response = await _upload(http, source)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["metadata"]["preview"]["status"] == "source"  # WebM plays in browsers as it is
    stored = _ffprobe(media_dir / body["filename"])["format"]
    assert abs(float(stored["duration"]) - body["metadata"]["duration"]) < 0.1


async def test_a_truncated_upload_is_refused_saying_where_it_ends(jobs_server: Any, media_dir: Path,
                                                                tmp_path: Path) -> None:
    server = await jobs_server(workers=0)
    source = build("truncated_mp4", tmp_path)
    async with _http(server) as http:
        response = await _upload(http, source)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "truncated" in error and "ends at" in error and source.name in error
    kept = [p for p in media_dir.rglob("*") if p.is_file()]
    assert kept == [], kept


async def test_a_preview_whose_job_ended_without_a_proxy_says_failed(jobs_server: Any, tmp_path: Path) -> None:
    server = await jobs_server(workers=0)  # nothing runs the job: it is cancelled while queued
    async with _http(server) as http:
        body = (await _upload(http, build("prores_pcm", tmp_path))).json()
        operation_id = body["metadata"]["preview"]["operationId"]
        assert (await http.post(f"/api/jobs/{operation_id}/cancel")).status_code == 200
        preview = (await http.get(f"/api/metadata/{body['filename']}")).json()["preview"]
    assert preview["status"] == "failed" and preview["operationId"] == operation_id
    assert "cancelled" in preview["error"]


async def test_a_file_stored_before_proxies_existed_gets_its_job_on_first_look(jobs_server: Any, media_dir: Path,
                                                                              tmp_path: Path) -> None:
    server = await jobs_server(workers=0)
    (media_dir / "old.avi").write_bytes(build("avi_mpeg4_mp3", tmp_path).read_bytes())
    async with _http(server) as http:
        preview = (await http.get("/api/metadata/old.avi")).json()["preview"]
        assert preview == {"status": "pending", "url": "/api/videos/old.avi/preview", "operationId": "ingest-old.avi"}
        job = (await http.get("/api/jobs/ingest-old.avi")).json()
        assert (job["status"], job["operation"]) == ("queued", "ingest")
        again = (await http.get("/api/metadata/old.avi")).json()["preview"]  # the same job, not another
    assert again == preview


async def test_an_upload_whose_preview_job_cannot_be_queued_leaves_nothing(jobs_server: Any, media_dir: Path,
                                                                           tmp_path: Path) -> None:
    server = await jobs_server(workers=0)

    async def refuse(*args: Any, **kwargs: Any) -> None:  # the queue's database fails at that moment
        raise OSError("the job queue is unreachable")

    server.app.jobs.enqueue_on = refuse
    async with _http(server) as http:
        response = await _upload(http, build("prores_pcm", tmp_path))
    assert response.status_code >= 500 and "error" in response.json()
    assert [p for p in media_dir.rglob("*") if p.is_file()] == []  # neither the file nor its description


async def test_an_upload_whose_owner_record_fails_leaves_no_preview_job(jobs_server: Any, media_dir: Path,
                                                                      tmp_path: Path, monkeypatch: Any) -> None:
    """The preview job is queued in the transaction of the owner row: when that transaction
    fails after queuing it (here writing its webhook event fails), the job goes with it."""
    server = await jobs_server(workers=0)

    async def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the event could not be written")

    monkeypatch.setattr("core.uploads.store.emit", fail)
    async with _http(server) as http:
        response = await _upload(http, build("prores_pcm", tmp_path))
        assert response.status_code >= 500 and "error" in response.json()
        assert [p for p in media_dir.rglob("*") if p.is_file()] == []
        async with server.app.db.acquire() as connection:
            assert await connection.fetchval("SELECT count(*) FROM jobs") == 0
