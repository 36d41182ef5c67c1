"""Jobs in a real browser: a trim's progress bar reaches 100 % and its output plays; a server
restart drops the WebSocket, the indicator says so and recovers, and a running render's
progress carries on to the end; cancel stops a render; a split offers both parts; a cut is
rendered the smart way and the panel says how many frames were encoded."""

from __future__ import annotations

import re

from playwright.async_api import Locator, Page, expect

from tests.ui.conftest import base_url, screenshot
from tests.ui.helpers import clip_file, create_project, open_editor, upload

SLOW = [{"type": "speed", "factor": 0.25}]
"""Renders a 10 s clip slowed down four times: long enough to act while it runs."""


async def output_plays(page: Page, job: Locator) -> None:
    """The job's (first) output video loads and its time moves when played."""
    video = job.locator("video.output-video").first
    await expect(video).to_be_visible()
    await video.evaluate("v => { v.muted = true; return v.play(); }")
    await page.wait_for_function("v => v.currentTime > 0.2 && v.readyState >= 2", arg=await video.element_handle(),
                                 timeout=15_000)


async def job_editor(ui_server, open_page, tmp_path, name: str, seconds: float, **timeline):
    """A server with a job worker and a project on a fresh clip, open in the editor: (server, page, watch)."""
    server = await ui_server(workers=1)
    url = base_url(server)
    uploaded = await upload(url, clip_file(tmp_path, seconds=seconds))
    project = await create_project(url, uploaded, name, **timeline)
    page, watch = await open_page(url)
    await open_editor(page, project["id"])
    return server, page, watch


async def test_trim_job_progress_reaches_100_and_the_output_plays(ui_server, open_page, tmp_path):
    _, page, watch = await job_editor(ui_server, open_page, tmp_path, "Trim me", 4,
                                      edits=[{"type": "trim", "start": 1.0, "end": 3.0}])
    await page.get_by_role("button", name="Export trim").click()

    job = page.locator("#job-list .job").first
    await expect(job.locator("strong")).to_have_text("Trim 0:01.00 – 0:03.00")
    await expect(job).to_have_attribute("data-status", "done", timeout=60_000)
    await expect(job.locator("progress")).to_have_js_property("value", 100)
    await expect(job.locator(".job-percent")).to_have_text("100 %")
    await expect(job.locator(".job-status")).to_have_text("Done")
    await expect(job.locator(".job-message")).to_contain_text("Output: 2.")
    download = job.get_by_role("link", name="Download")
    href = await download.get_attribute("href")
    assert href.startswith("/videos/") and await download.get_attribute("download")
    await output_plays(page, job)
    await screenshot(page, "trim-done")

    # The panel keeps finished jobs across a reload, output included.
    await page.reload()
    await expect(page.locator("#job-list .job")).to_have_attribute("data-status", "done", timeout=30_000)
    await output_plays(page, page.locator("#job-list .job").first)
    assert watch.errors == []


async def test_a_cut_is_rendered_smart_and_the_panel_says_how(ui_server, open_page, tmp_path):
    """Cutting 0.8 s out of a 6 s clip (1 s GOPs) copies the whole GOPs: the panel says how many of
    the 130 frames had to be encoded, and the output plays."""
    _, page, watch = await job_editor(ui_server, open_page, tmp_path, "Cut me", 6,
                                      edits=[{"type": "cut", "start": 2.3, "end": 3.1}])
    await page.get_by_role("button", name="Render all edits").click()
    job = page.locator("#job-list .job").first
    await expect(job).to_have_attribute("data-status", "done", timeout=60_000)
    message = job.locator(".job-message")
    await expect(message).to_contain_text(re.compile(r"Output: 5\.\d+ s · smart render: \d+ of 130 frames re-encoded"))
    encoded = int(re.search(r"render: (\d+) of", await message.text_content() or "").group(1))
    assert 0 < encoded < 130 / 2
    await output_plays(page, job)
    assert watch.errors == []


async def test_restart_drops_the_socket_and_the_running_render_carries_on(ui_server, open_page, tmp_path):
    server, page, _ = await job_editor(ui_server, open_page, tmp_path, "Slow render", 10, edits=SLOW)
    indicator = page.locator("#connection")
    await expect(indicator).to_have_text("Connected")
    await page.get_by_role("button", name="Render all edits").click()
    job = page.locator("#job-list .job").first
    await expect(job).to_have_attribute("data-status", "running", timeout=30_000)
    await page.wait_for_function("document.querySelector('#job-list .job progress').value > 0", timeout=30_000)

    port = server.port
    await server.stop()
    await expect(indicator).to_have_text("Reconnecting…", timeout=10_000)
    await expect(indicator).to_have_attribute("data-state", "reconnecting")
    await screenshot(page, "reconnecting")
    assert await job.locator("progress").evaluate("p => p.value") < 100

    await ui_server(workers=1, port=port)  # the server restarted, on the page's origin
    await _recovers(page, indicator, job)


async def _recovers(page: Page, indicator, job) -> None:
    await expect(indicator).to_have_text("Connected", timeout=40_000)
    await expect(job).to_have_attribute("data-status", "done", timeout=120_000)
    await expect(job.locator(".job-percent")).to_have_text("100 %")
    await output_plays(page, job)
    await screenshot(page, "recovered-render-done")


async def test_cancel_stops_a_running_render(ui_server, open_page, tmp_path):
    _, page, watch = await job_editor(ui_server, open_page, tmp_path, "Cancel me", 10, edits=SLOW)
    await page.get_by_role("button", name="Render all edits").click()
    job = page.locator("#job-list .job").first
    await expect(job).to_have_attribute("data-status", "running", timeout=30_000)
    await job.get_by_role("button", name="Cancel").click()
    await expect(job).to_have_attribute("data-status", "cancelled", timeout=30_000)
    await expect(job.locator(".job-status")).to_have_text("Cancelled")
    await expect(job.get_by_role("button", name="Cancel")).to_have_count(0)
    await expect(job.locator("video")).to_have_count(0)
    assert watch.errors == []


async def test_split_job_offers_both_parts(ui_server, open_page, tmp_path):
    _, page, watch = await job_editor(ui_server, open_page, tmp_path, "Split me", 4, currentTime=2.0)
    await page.get_by_role("button", name="Split file here").click()
    job = page.locator("#job-list .job").first
    await expect(job.locator("strong")).to_have_text("Split at 0:02.00")
    await expect(job).to_have_attribute("data-status", "done", timeout=60_000)
    await expect(job.get_by_role("link", name="Download part 1")).to_be_visible()
    await expect(job.get_by_role("link", name="Download part 2")).to_be_visible()
    await expect(job.locator("video")).to_have_count(2)
    await output_plays(page, job)
    assert watch.errors == []
