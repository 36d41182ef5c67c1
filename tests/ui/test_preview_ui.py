"""The browser proxy in a real browser: a phone's HEVC .MOV (which Chromium cannot play) uploaded
through the page shows "Preparing preview… NN %" over the player, then plays the server's
H.264 proxy, upright; and, with the server's answers stood in for, the editor follows a pending
ingest over the WebSocket, switches to the proxy keeping the playhead, and keeps working when the
proxy fails."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from playwright.async_api import Page, Route, WebSocketRoute, expect

from tests.media import checks
from tests.media.realworld import build
from tests.ui.conftest import base_url, screenshot
from tests.ui.helpers import clip_file, create_project, upload

RECORD_OVERLAY = """
window.__previewTexts = [];
document.addEventListener("DOMContentLoaded", () => {
  const text = document.querySelector("#preview-status-text");
  new MutationObserver(() => window.__previewTexts.push(text.textContent))
    .observe(text, { childList: true, characterData: true, subtree: true });
});
"""
"""Keeps every sentence the player's overlay showed, however briefly."""

PLAYER = "document.querySelector('#player')"


async def plays(page: Page) -> None:
    """Muted (so autoplay is allowed), the player starts and its time moves."""
    start = await page.evaluate(f"(async () => {{ const p = {PLAYER}; p.muted = true; await p.play(); return p.currentTime; }})()")
    await page.wait_for_function(f"{PLAYER}.currentTime > {start} + 0.3 && {PLAYER}.readyState >= 2", timeout=15_000)
    await page.evaluate(f"{PLAYER}.pause()")


async def get_json(url: str, path: str) -> Any:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.get(path)
        response.raise_for_status()
        return response.json()


async def busy_worker(url: str, tmp_path) -> str:
    """Start a slow render and wait until the server's one job worker runs it; its operation id.

    The phone clip's proxy takes the worker a fraction of a second: queued behind this, the
    preview is certainly still pending when the editor opens, whatever the machine's speed.
    """
    uploaded = await upload(url, clip_file(tmp_path, "slow.mp4", seconds=30))
    project = await create_project(url, uploaded, "Slow render", edits=[{"type": "speed", "factor": 0.25}])
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post("/api/edit/process", json={"projectId": project["id"]})
        response.raise_for_status()
        operation = response.json()["operationId"]
        for _ in range(300):
            if (await client.get(f"/api/jobs/{operation}")).json()["status"] == "running":
                return operation
            await asyncio.sleep(0.1)
    raise AssertionError("the render never started")


async def cancel(url: str, operation: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post(f"/api/jobs/{operation}/cancel")
        if response.status_code != 409:  # 409: it had finished already
            response.raise_for_status()


async def test_phone_clip_uploaded_in_the_editor_plays_through_its_browser_proxy(ui_server, open_page, tmp_path):
    clip = build("phone_hevc", tmp_path)
    stream = checks.stream(clip, "video")
    assert stream is not None
    stored = (stream["width"], stream["height"])
    assert (stream["codec_name"], stream["pix_fmt"]) == ("hevc", "yuv420p10le")
    assert stored[0] > stored[1] and checks.rotation(clip) % 180 == 90  # stored landscape, shown portrait
    shown = (stored[1], stored[0])

    server = await ui_server(workers=1)
    url = base_url(server)
    render = await busy_worker(url, tmp_path)
    page, watch = await open_page(url)
    await page.add_init_script(RECORD_OVERLAY)
    await page.goto("/")
    await page.set_input_files("#file-input", str(clip))  # the page's own upload, as a user would
    await expect(page).to_have_url(re.compile(r"/#/projects/\d+$"), timeout=30_000)

    # The ingest shows over the player while it waits and runs, and in the jobs panel like any job.
    overlay = page.locator("#preview-status")
    await expect(overlay).to_have_text("Preparing preview… 0 %")
    job = page.locator("#job-list .job", has_text="Preparing preview")
    await expect(job).to_have_count(1)
    assert await page.locator("#player").get_attribute("src") is None  # not the HEVC source
    await screenshot(page, "preview-phone-pending")
    await cancel(url, render)

    project_id = int(page.url.rsplit("/", 1)[1])
    project = await get_json(url, f"/api/projects/{project_id}")
    filename = project["video_filename"]
    player = page.locator("#player")
    await expect(job).to_have_attribute("data-status", "done", timeout=120_000)
    await expect(job.locator(".job-message")).to_have_text("Preview ready")
    await expect(job.locator("video")).to_have_count(0)  # the proxy is not an output to download

    meta = await get_json(url, f"/api/metadata/{quote(filename)}")
    preview = meta["preview"]
    assert preview == {"status": "ready", "url": f"/api/videos/{quote(filename)}/preview",
                       "operationId": f"ingest-{filename}"}, preview
    assert (meta["display_width"], meta["display_height"], meta["rotation"] % 180) == (*shown, 90)
    assert meta["browser_playable"] is False
    await expect(player).to_have_attribute("src", preview["url"], timeout=30_000)
    await expect(overlay).to_be_hidden()
    # The percentage followed the job's progress messages on the way.
    percents = [int(m[1]) for t in await page.evaluate("window.__previewTexts")
                if (m := re.fullmatch(r"Preparing preview… (\d+) %", t))]
    assert percents == sorted(percents) and any(0 < p < 100 for p in percents), percents
    await page.wait_for_function(f"{PLAYER}.readyState >= 2 && {PLAYER}.videoWidth > 0", timeout=30_000)
    width, height = await page.evaluate(f"[{PLAYER}.videoWidth, {PLAYER}.videoHeight]")
    assert 0 < width < height, (width, height)  # the proxy is upright: portrait
    await plays(page)

    # The filmstrip is upright too, and the time axis is the source's.
    thumbnails = await get_json(url, f"/api/videos/{quote(filename)}/thumbnails?count=30")
    assert thumbnails["tile"]["h"] > thumbnails["tile"]["w"], thumbnails["tile"]
    await expect(page.locator("#timeline")).to_have_attribute("data-filmstrip", "30", timeout=30_000)
    await expect(page.locator("#time")).to_contain_text(f"/ 0:{meta['duration']:05.2f}")
    assert project["description"].endswith(f"{shown[0]}×{shown[1]}")  # the size as shown

    await page.evaluate(f"{PLAYER}.currentTime = 1.5")
    await page.wait_for_function(f"Math.abs({PLAYER}.currentTime - 1.5) < 0.01 && {PLAYER}.readyState >= 2")
    await screenshot(page, "preview-phone-portrait")
    texts = await page.evaluate("window.__previewTexts")
    assert not [t for t in texts if t.startswith("Preview failed")], texts
    assert watch.errors == [] and watch.dialogs == []


# --- the editor's side alone: the server's preview answers stood in for ------------------------


async def stand_in(page: Page, preview: dict[str, Any], job: dict[str, Any]) -> None:
    """Metadata answers carry `preview`; GET /api/jobs/<its operation> answers `job`."""

    async def metadata(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        await route.fulfill(response=response, json={**body, "preview": preview})

    async def job_state(route: Route) -> None:
        await route.fulfill(json={"operationId": preview["operationId"], "operation": "ingest", **job})

    await page.route("**/api/metadata/*", metadata)
    await page.route(f"**/api/jobs/{preview['operationId']}", job_state)


class SocketTap:
    """The page's WebSocket, passed through to the server; records what the page sends and
    can hand the page messages of its own."""

    def __init__(self) -> None:
        self.route: WebSocketRoute | None = None
        self.sent: list[Any] = []

    async def install(self, page: Page) -> None:
        await page.route_web_socket(re.compile(r"/ws$"), self._handle)

    def _handle(self, route: WebSocketRoute) -> None:
        self.route = route
        server = route.connect_to_server()

        def to_server(message: str | bytes) -> None:
            self.sent.append(json.loads(message))
            server.send(message)

        route.on_message(to_server)
        server.on_message(route.send)

    def send(self, type_: str, data: dict[str, Any]) -> None:
        assert self.route is not None, "the page has not connected"
        self.route.send(json.dumps({"type": type_, "data": data}))


async def open_pending(ui_server: Any, open_page: Any, tmp_path: Path, name: str, preview: dict[str, Any],
                       job: dict[str, Any], **timeline: Any) -> tuple[Any, Any, dict[str, Any], SocketTap]:
    """A project whose metadata (stood in) says its preview is ``preview``, opened in a page
    whose WebSocket goes through a tap: ``(page, watch, uploaded, tap)``, once connected."""
    server = await ui_server()
    url = base_url(server)
    uploaded = await upload(url, clip_file(tmp_path))
    project = await create_project(url, uploaded, name, **timeline)
    page, watch = await open_page(url)
    await stand_in(page, preview, job)
    tap = SocketTap()
    await tap.install(page)
    await page.goto(f"/#/projects/{project['id']}")
    await expect(page.locator("#connection")).to_have_text("Connected")
    return page, watch, uploaded, tap


async def test_pending_preview_follows_the_socket_and_switches_keeping_the_playhead(ui_server, open_page, tmp_path):
    operation = "ingest-standin-1"
    page, watch, uploaded, tap = await open_pending(
        ui_server, open_page, tmp_path, "Pending",
        {"status": "pending", "url": "/api/videos/not-fetched-while-pending/preview", "operationId": operation},
        {"status": "running", "progress": 10}, currentTime=1.5)

    overlay = page.locator("#preview-status")
    await expect(overlay).to_have_text("Preparing preview… 10 %")
    await expect(page.locator("#time")).to_have_text("0:01.50 / 0:03.00")
    assert {"type": "subscribe", "data": {"operationIds": [operation]}} in tap.sent
    assert await page.locator("#player").get_attribute("src") is None  # nothing the browser cannot play
    job = page.locator("#job-list .job", has_text="Preparing preview")
    await expect(job).to_have_count(1)

    # Meanwhile the editor works: the timeline is drawn, markers and splits land at the playhead.
    await expect(page.locator("#timeline")).to_have_attribute("data-filmstrip", "30", timeout=30_000)
    await page.keyboard.press("m")
    await expect(page.locator(".marker-time")).to_have_text(["0:01.50"])
    await page.keyboard.press("Space")  # nothing to play yet: no error, no banner
    await expect(page.locator("#notice")).to_be_hidden()

    tap.send("progress", {"operationId": operation, "operation": "ingest", "progress": 42.7, "message": "Encoding"})
    await expect(overlay).to_have_text("Preparing preview… 42 %")
    await expect(job.locator(".job-percent")).to_have_text("42 %")
    await screenshot(page, "preview-pending")
    tap.send("progress", {"operationId": "trim-someone-else", "operation": "trim", "progress": 90})
    await page.wait_for_timeout(100)
    await expect(overlay).to_have_text("Preparing preview… 42 %")

    # Done: the player switches to the proxy the message names and starts at the playhead.
    tap.send("complete", {"operationId": operation, "result": {"filename": uploaded["filename"], "url": uploaded["url"],
                                                               "duration": 3.0}})
    await expect(overlay).to_be_hidden()
    await expect(page.locator("#player")).to_have_attribute("src", uploaded["url"])
    await page.wait_for_function(f"{PLAYER}.readyState >= 2 && Math.abs({PLAYER}.currentTime - 1.5) < 0.01")
    await expect(job.locator(".job-message")).to_have_text("Preview ready")
    await plays(page)
    assert watch.errors == []


async def test_a_preview_that_failed_says_why_and_the_editor_keeps_working(ui_server, open_page, tmp_path):
    operation = "ingest-standin-2"
    page, watch, _, tap = await open_pending(
        ui_server, open_page, tmp_path, "Broken", {"status": "pending", "url": None, "operationId": operation},
        {"status": "running", "progress": 30})

    overlay = page.locator("#preview-status")
    await expect(overlay).to_have_text("Preparing preview… 30 %")
    tap.send("error", {"operationId": operation, "error": "the video stream could not be decoded"})
    await expect(overlay).to_have_text("Preview failed: the video stream could not be decoded")
    await expect(overlay).to_have_attribute("data-status", "failed")
    job = page.locator("#job-list .job", has_text="Preparing preview")
    await expect(job).to_have_attribute("data-status", "failed")
    await expect(page.locator("#timeline")).to_have_attribute("data-filmstrip", "30", timeout=30_000)

    # Seeking, markers, edits and autosave all work without a playable video.
    await page.keyboard.press("Shift+ArrowRight")  # a second on
    await expect(page.locator("#time")).to_have_text("0:01.00 / 0:03.00")
    await expect(page.locator("#timeline")).to_have_attribute("data-playhead", "1.00")
    await page.keyboard.press("m")
    await page.keyboard.press("s")
    await expect(page.locator(".marker-time")).to_have_text(["0:01.00"])
    await expect(page.locator("#edit-list .edit .grow")).to_have_text(["Split at 0:01.00"])
    await expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved "), timeout=10_000)
    await expect(page.get_by_role("button", name="Render all edits")).to_be_enabled()
    await screenshot(page, "preview-failed")
    assert watch.errors == []
