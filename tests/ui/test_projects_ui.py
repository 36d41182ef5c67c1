"""The projects page in a real browser: create from an upload, list, open, rename, delete."""

from __future__ import annotations

from playwright.async_api import expect

from tests.ui.conftest import base_url, screenshot
from tests.ui.helpers import clip_file, create_project, upload


async def test_upload_creates_a_project_and_opens_the_editor(ui_server, open_page, tmp_path):
    server = await ui_server()
    page, watch = await open_page(base_url(server))
    await page.goto("/")
    await expect(page.locator("#projects-empty")).to_be_visible()
    await page.fill("#new-project-name", "Beach day")
    await page.set_input_files("#file-input", str(clip_file(tmp_path, "beach.mp4")))
    await expect(page).to_have_url(f"{base_url(server)}/#/projects/1", timeout=30_000)
    await expect(page.locator("#project-title")).to_have_text("Beach day")
    # The filmstrip and the waveform arrive from the media endpoints and are drawn on the canvas.
    timeline = page.locator("#timeline")
    await expect(timeline).to_have_attribute("data-filmstrip", "30", timeout=30_000)
    await expect(timeline).to_have_attribute("data-waveform", "1000", timeout=30_000)
    await expect(page.locator("#connection")).to_have_text("Connected")
    await page.wait_for_function("document.querySelector('#player').readyState >= 1")
    await expect(page.locator("#time")).to_have_text("0:00.00 / 0:03.00")
    await screenshot(page, "editor-1280x720")

    await page.click(".brand")
    row = page.locator(".project")
    await expect(row).to_have_count(1)
    await expect(row.locator(".project-open")).to_have_text("Beach day")
    await expect(row.locator(".project-meta")).to_contain_text("0 markers")
    await screenshot(page, "projects-1280x720")
    assert watch.errors == [] and watch.dialogs == []


async def test_not_a_video_is_refused_in_plain_words(ui_server, open_page, tmp_path):
    server = await ui_server()
    page, _ = await open_page(base_url(server))
    await page.goto("/")
    notes = tmp_path / "notes.mp4"
    notes.write_bytes(b"these are not the frames you are looking for" * 100)
    await page.set_input_files("#file-input", str(notes))
    error = page.locator("#upload-error")
    await expect(error).to_be_visible(timeout=30_000)
    await expect(error).to_contain_text("The upload failed:")
    text = await error.text_content()
    assert "Traceback" not in text and "<" not in text
    plain = tmp_path / "notes.txt"
    plain.write_text("hello")
    await page.set_input_files("#file-input", str(plain))
    await expect(error).to_have_text('"notes.txt" does not look like a video file. Choose an MP4, MOV, MKV or WebM file.')


async def test_list_is_recent_first_and_rename_and_delete_work(ui_server, open_page, tmp_path):
    server = await ui_server()
    url = base_url(server)
    uploaded = await upload(url, clip_file(tmp_path))
    for name in ("First", "Second", "Third"):
        await create_project(url, uploaded, name)
    page, watch = await open_page(url)
    await page.goto("/")
    names = page.locator(".project .project-open")
    await expect(names).to_have_text(["Third", "Second", "First"])

    second = page.locator(".project", has_text="Second")
    await second.get_by_role("button", name="Rename").click()
    field = page.get_by_label("New project name")
    await field.fill("Second, renamed")
    await field.press("Enter")
    # A rename is an update: the project moves to the top.
    await expect(names).to_have_text(["Second, renamed", "Third", "First"])

    first = page.locator(".project", has_text="First")
    await first.get_by_role("button", name="Delete").click()
    await expect(first.get_by_text("Delete it?")).to_be_visible()
    await first.get_by_role("button", name="Keep").click()
    await expect(names).to_have_count(3)
    await first.get_by_role("button", name="Delete").click()
    await first.get_by_role("button", name="Delete for good").click()
    await expect(names).to_have_text(["Second, renamed", "Third"])
    assert watch.errors == [] and watch.dialogs == []


async def test_unknown_project_sends_the_user_back_to_the_list(ui_server, open_page):
    server = await ui_server()
    page, _ = await open_page(base_url(server))
    await page.goto("/#/projects/999")
    await expect(page.locator("#notice-text")).to_have_text("That project does not exist any more.")
    await expect(page.locator("#projects-view")).to_be_visible()


async def test_drag_and_drop_uploads_too(ui_server, open_page, tmp_path):
    server = await ui_server()
    url = base_url(server)
    uploaded = await upload(url, clip_file(tmp_path))
    page, watch = await open_page(url)
    await page.goto("/")
    await page.fill("#new-project-name", "Dropped")
    # A real File in a real DataTransfer, dropped on the zone as the browser would.
    await page.evaluate("""async (src) => {
        const bytes = await (await fetch(src)).arrayBuffer();
        const data = new DataTransfer();
        data.items.add(new File([bytes], "dropped.mp4", { type: "video/mp4" }));
        const zone = document.querySelector("#dropzone");
        zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: data, bubbles: true, cancelable: true }));
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
    }""", uploaded["url"])
    await expect(page.locator("#project-title")).to_have_text("Dropped", timeout=30_000)
    assert watch.errors == []


async def test_tus_upload_resumes_where_it_stopped(ui_server, open_page, tmp_path):
    server = await ui_server()
    url = base_url(server)
    clip = clip_file(tmp_path)
    uploaded = await upload(url, clip)
    page, _ = await open_page(url)
    await page.goto("/")
    result = await page.evaluate("""async (src) => {
        const { tusAvailable, tusKey, tusUpload } = await import("/static/js/upload.js");
        const bytes = await (await fetch(src)).arrayBuffer();
        const file = new File([bytes], "big.mp4", { type: "video/mp4", lastModified: 1 });
        // A first attempt that stopped after 10 000 bytes: the upload exists, its URL is remembered.
        const created = await fetch("/api/uploads/", { method: "POST", headers: {
            "tus-resumable": "1.0.0", "upload-length": String(file.size),
            "upload-metadata": "filename " + btoa("big.mp4") } });
        const url = new URL(created.headers.get("location"), window.location.href).pathname;
        await fetch(url, { method: "PATCH", headers: { "tus-resumable": "1.0.0", "upload-offset": "0",
            "content-type": "application/offset+octet-stream" }, body: file.slice(0, 10000) });
        localStorage.setItem(tusKey(file), url);
        const offsets = [];
        const stored = await tusUpload(file, (fraction, sent) => offsets.push(sent), 16384);
        return { available: await tusAvailable(), offsets, stored, size: file.size,
                 forgotten: localStorage.getItem(tusKey(file)) === null };
    }""", uploaded["url"])
    assert result["available"]
    assert result["offsets"][0] == 10000 + 16384  # resumed, not restarted
    assert result["offsets"][-1] == result["size"]
    assert result["stored"]["url"].startswith("/videos/") and result["stored"]["metadata"]["duration"] == 3.0
    assert result["forgotten"]
