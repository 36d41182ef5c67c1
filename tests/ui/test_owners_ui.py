"""The editor with access=owners: each browser is its own owner, with no sign-in step.

GET / starts a session for a browser that has none; its uploads, projects, jobs and
WebSocket progress are its own, and another browser sees none of them.
"""

from __future__ import annotations

from playwright.async_api import expect

from tests.ui.conftest import base_url
from tests.ui.helpers import clip_file


async def test_two_browsers_do_not_see_each_others_work(ui_server, open_page, tmp_path):
    server = await ui_server(workers=1, access="owners")
    url = base_url(server)
    alice, alice_watch = await open_page(url)
    await alice.goto("/")
    await expect(alice.locator("#projects-empty")).to_be_visible()
    await alice.fill("#new-project-name", "Alice's cut")
    await alice.set_input_files("#file-input", str(clip_file(tmp_path, "alice.mp4")))
    await expect(alice).to_have_url(f"{url}/#/projects/1", timeout=30_000)
    await expect(alice.locator("#timeline")).to_have_attribute("data-filmstrip", "30", timeout=30_000)
    await expect(alice.locator("#connection")).to_have_text("Connected")

    await alice.get_by_role("button", name="Export trim").click()
    job = alice.locator("#job-list .job").first
    await expect(job).to_have_attribute("data-status", "done", timeout=60_000)  # progress came over her socket
    await expect(job.locator(".job-percent")).to_have_text("100 %")

    bob, bob_watch = await open_page(url)
    await bob.goto("/")
    await expect(bob.locator("#projects-empty")).to_be_visible()
    await bob.goto("/#/projects/1")
    await expect(bob.locator("#notice-text")).to_have_text("That project does not exist any more.")
    await expect(bob.locator("#job-list .job")).to_have_count(0)
    assert alice_watch.errors == []
    assert all("404" in error for error in bob_watch.errors), bob_watch.errors
