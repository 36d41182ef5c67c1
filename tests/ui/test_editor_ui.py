"""The editor in a real browser: markers, keyboard, timeline editing, undo, autosave, reload."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.ui.conftest import base_url, screenshot
from tests.ui.helpers import clip_file, create_project, get_project, open_editor, upload

XSS = "<img src=x onerror=alert(1)>"
SAVED = re.compile(r"^Saved \d\d:\d\d:\d\d$")


@pytest.fixture
async def editor(ui_server, open_page, tmp_path) -> dict[str, Any]:
    """A project on a 3 s clip, open in the editor with its timeline drawn."""
    server = await ui_server()
    url = base_url(server)
    uploaded = await upload(url, clip_file(tmp_path))
    project = await create_project(url, uploaded, "Edit me")
    page, watch = await open_page(url)
    video_statuses: list[int] = []
    page.on("response", lambda r: video_statuses.append(r.status) if "/videos/" in r.url else None)
    await open_editor(page, project["id"])
    return {"server": server, "url": url, "project": project, "uploaded": uploaded, "page": page, "watch": watch,
            "video_statuses": video_statuses}


async def saved(page: Page) -> None:
    """Wait for the autosave indicator to say "Saved hh:mm:ss"."""
    await expect(page.locator("#save-status")).to_have_text(SAVED, timeout=10_000)


async def stored_time(url: str, project_id: int, expected: float) -> None:
    """Wait until the project's saved currentTime is ``expected``."""
    for _ in range(100):
        if abs((await get_project(url, project_id))["timeline_state"]["currentTime"] - expected) < 0.01:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"currentTime {expected} was never saved")


async def player_time(page: Page) -> float:
    return await page.evaluate("document.querySelector('#player').currentTime")


async def test_markers_add_label_jump_delete_and_survive_a_reload(editor):
    page, url, project = editor["page"], editor["url"], editor["project"]
    await page.evaluate("document.querySelector('#player').currentTime = 1.2")
    await page.wait_for_function("Math.abs(document.querySelector('#player').currentTime - 1.2) < 0.01")
    await page.keyboard.press("m")
    await page.get_by_role("button", name="Marker", exact=True).click()  # a second one, at the same time
    markers = page.locator("#marker-list .marker")
    await expect(markers).to_have_count(2)
    await expect(markers.first.locator(".marker-time")).to_have_text("0:01.20")

    label = page.get_by_label("Label of marker 1")
    await label.fill("Sunset")
    await label.press("Enter")
    await page.get_by_label("Delete marker 2").click()
    await expect(markers).to_have_count(1)
    await saved(page)
    stored = (await get_project(url, project["id"]))["timeline_state"]
    assert stored["markers"] == [{"time": 1.2, "label": "Sunset"}]
    assert stored["currentTime"] == pytest.approx(1.2, abs=0.01)

    await page.evaluate("document.querySelector('#player').currentTime = 0")
    await page.locator(".marker-time").click()
    await page.wait_for_function("Math.abs(document.querySelector('#player').currentTime - 1.2) < 0.01")

    # The player streams and seeks through Range requests.
    assert 206 in editor["video_statuses"]

    # The jump is saved before reloading: a reload racing its own last save (the page's
    # keepalive PUT against the next page's GET) is another test's subject.
    await stored_time(url, project["id"], 1.2)
    await page.reload()
    await expect(page.locator("#timeline")).to_have_attribute("data-filmstrip", "30", timeout=30_000)
    await expect(page.get_by_label("Label of marker 1")).to_have_value("Sunset")
    await page.wait_for_function("Math.abs(document.querySelector('#player').currentTime - 1.2) < 0.01")
    assert editor["watch"].errors == []


async def test_marker_label_with_markup_stays_text(editor):
    page, url, project = editor["page"], editor["url"], editor["project"]
    await page.keyboard.press("M")
    label = page.get_by_label("Label of marker 1")
    await label.fill(XSS)
    await label.press("Enter")
    await saved(page)
    await page.reload()
    await expect(page.get_by_label("Label of marker 1")).to_have_value(XSS, timeout=30_000)
    # The project name too, on the list and in the title bar.
    async with httpx.AsyncClient(base_url=url) as client:
        (await client.put(f"/api/projects/{project['id']}", json={"name": XSS})).raise_for_status()
    await page.reload()
    await expect(page.locator("#project-title")).to_have_text(XSS, timeout=30_000)
    await page.click(".brand")
    await expect(page.locator(".project-open")).to_have_text(XSS)
    await expect(page.locator(".project-meta")).to_contain_text("1 marker")
    await page.wait_for_timeout(300)  # a broken image's onerror would have fired by now
    assert await page.locator("img").count() == 0
    assert editor["watch"].dialogs == []
    await screenshot(page, "xss-as-text")


async def test_keyboard_play_step_split_and_undo(editor):
    page, url, project = editor["page"], editor["url"], editor["project"]
    await page.keyboard.press("Space")
    await page.wait_for_function("!document.querySelector('#player').paused")
    await expect(page.locator("#play")).to_have_attribute("aria-label", "Pause")
    # The timeline's playhead follows the player while it plays.
    await page.wait_for_function("Number(document.querySelector('#timeline').dataset.playhead) > 0.3")
    await page.keyboard.press("Space")
    await page.wait_for_function("document.querySelector('#player').paused")
    playhead = float(await page.locator("#timeline").get_attribute("data-playhead"))
    assert playhead == pytest.approx(await player_time(page), abs=0.01)

    await page.evaluate("document.querySelector('#player').currentTime = 1")
    await page.wait_for_function("document.querySelector('#player').currentTime === 1")
    await page.keyboard.press("ArrowRight")
    await page.keyboard.press("ArrowRight")
    assert await player_time(page) == pytest.approx(1.08, abs=1e-3)  # 25 fps: two frames
    await page.keyboard.press("ArrowLeft")
    assert await player_time(page) == pytest.approx(1.04, abs=1e-3)

    await page.keyboard.press("s")
    edits = page.locator("#edit-list .edit")
    await expect(edits.locator(".grow")).to_have_text(["Split at 0:01.04"])
    await page.keyboard.press("Control+z")
    await expect(edits).to_have_count(0)
    await page.keyboard.press("Control+Shift+z")
    await expect(edits).to_have_count(1)
    await page.get_by_role("button", name="↶ Undo").click()
    await expect(edits).to_have_count(0)
    await page.get_by_role("button", name="↷ Redo").click()
    await saved(page)
    assert (await get_project(url, project["id"]))["timeline_state"]["edits"] == [{"type": "split", "at": 1.04}]


async def test_trim_handles_cut_range_effects_and_zoom(editor):
    page, url, project = editor["page"], editor["url"], editor["project"]
    box = await page.locator("#timeline").bounding_box()
    y = box["y"] + 60  # the filmstrip band
    # Drag the start handle to 1/3 of the way (1 s of 3 s) and the end handle to 2.4 s.
    await page.mouse.move(box["x"] + 3, y)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] / 3, y, steps=5)
    await page.mouse.up()
    await page.mouse.move(box["x"] + box["width"] - 3, y)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=5)
    await page.mouse.up()
    edits = page.locator("#edit-list .edit")
    await expect(edits).to_have_count(1)
    await expect(edits.first).to_have_attribute("data-type", "trim")

    # Select 1.5 s - 1.8 s by dragging on the strip, then cut it.
    await page.mouse.move(box["x"] + box["width"] * 0.5, y)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
    await page.mouse.up()
    await expect(page.locator("#selection-info")).to_contain_text("Selected 0:01.50")
    await page.get_by_role("button", name="Cut selection").click()
    await page.get_by_label("Speed").select_option("1.5")
    await page.get_by_label("Fade in (s)").fill("0.5")
    await page.get_by_label("Fade in (s)").press("Tab")
    await expect(edits).to_have_count(4)
    await screenshot(page, "editor-edits-1280x720")

    zoom = page.locator("#zoom-level")
    await page.get_by_role("button", name="Zoom in").click()
    await expect(zoom).to_have_text("1.5×")
    await page.mouse.move(box["x"] + box["width"] / 2, y)
    await page.mouse.wheel(0, -400)
    await expect(zoom).not_to_have_text("1.5×")
    await page.get_by_role("button", name="Fit").click()
    await expect(zoom).to_have_text("1.0×")

    await saved(page)
    stored = (await get_project(url, project["id"]))["timeline_state"]["edits"]
    trim, cut, speed, fade = stored
    assert trim["type"] == "trim" and trim["start"] == pytest.approx(1.0, abs=0.05)
    assert trim["end"] == pytest.approx(2.4, abs=0.05)
    assert cut["type"] == "cut" and cut["start"] == pytest.approx(1.5, abs=0.05) and cut["end"] == pytest.approx(1.8, abs=0.05)
    assert speed == {"type": "speed", "factor": 1.5}
    assert fade == {"type": "fade", "in": 0.5, "out": 0}
    assert editor["watch"].errors == []


async def test_another_tab_changing_the_project_is_a_conflict_the_user_resolves(editor, open_page):
    page, url, project = editor["page"], editor["url"], editor["project"]
    other, _ = await open_page(url)
    await open_editor(other, project["id"])

    await other.keyboard.press("m")
    await saved(other)
    await page.evaluate("document.querySelector('#player').currentTime = 2")
    await page.keyboard.press("m")
    banner = page.locator("#conflict")
    await expect(banner).to_be_visible(timeout=10_000)
    await expect(page.locator("#save-status")).to_have_text("Changed in another tab")
    await screenshot(page, "conflict-412")

    await page.get_by_role("button", name="Load their version").click()
    await expect(banner).to_be_hidden()
    await expect(page.locator(".marker-time")).to_have_text(["0:00.00"])

    # Again, and this time this tab wins.
    await other.evaluate("document.querySelector('#player').currentTime = 1")
    await other.keyboard.press("m")
    await saved(other)
    await page.evaluate("document.querySelector('#player').currentTime = 2.5")
    await page.keyboard.press("m")
    await expect(banner).to_be_visible(timeout=10_000)
    await page.get_by_role("button", name="Overwrite with mine").click()
    await saved(page)
    stored = (await get_project(url, project["id"]))["timeline_state"]["markers"]
    assert [m["time"] for m in stored] == [0, 2.5]


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (1920, 1080)])
async def test_layout_fits_the_screen(ui_server, open_page, tmp_path, width, height):
    server = await ui_server()
    url = base_url(server)
    uploaded = await upload(url, clip_file(tmp_path))
    project = await create_project(url, uploaded, "Layout", markers=[{"time": 0.5, "label": "A marker with a long label"}])
    page, watch = await open_page(url, width, height)
    await open_editor(page, project["id"])
    overflow = await page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    assert overflow == [width, height]
    for name in ("Play", "Marker", "Split", "Zoom in", "Export trim", "Render all edits", "↶ Undo"):
        box = await page.get_by_role("button", name=name, exact=True).bounding_box()
        assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, name
    timeline = await page.locator("#timeline").bounding_box()
    assert timeline["y"] + timeline["height"] <= height and timeline["width"] > width * 0.4
    await screenshot(page, f"editor-{width}x{height}")
    await page.click(".brand")
    await expect(page.locator(".project")).to_have_count(1)
    await screenshot(page, f"projects-{width}x{height}")
    assert watch.errors == []


async def test_a_change_made_just_before_leaving_is_saved(editor):
    page, url, project = editor["page"], editor["url"], editor["project"]
    await page.keyboard.press("m")
    await expect(page.locator("#save-status")).to_have_text("Unsaved changes")
    await page.reload()  # well inside the autosave's debounce: pagehide sends it
    await expect(page.get_by_label("Label of marker 1")).to_have_value("Marker 1", timeout=30_000)
    assert len((await get_project(url, project["id"]))["timeline_state"]["markers"]) == 1
