"""Fixtures of the browser tests: a fully wired server, headless Chromium, a page on it.

The server runs in-process on the test's event loop; Playwright's async API drives a
Chromium process over a pipe from the same loop, so both make progress while a test
awaits either. Screenshots go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Dialog, Page, async_playwright

from core.jobs.settings import JobSettings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
FAST_JOBS = JobSettings(lease_seconds=1.0, poll_interval=0.2, max_attempts=3, progress_interval=0.05, nice=0,
                        codec_threads=1)


@pytest.fixture
async def ui_server(start_server: Any, redis_url: str, tmp_path: Path) -> Callable[..., Any]:
    """``await ui_server(workers=0, **settings)``: a started, fully wired server; jobs need ``workers=1``.

    Every server a test starts shares the database and the media directory, so a second
    one after stopping the first is that server restarted.
    """
    media = tmp_path / "media"

    async def factory(workers: int = 0, port: int | None = None, **settings: Any) -> Any:
        return await start_server(port=port or free_port(), redis_url=redis_url, media_dir=media, workers=workers,
                                  jobs=FAST_JOBS, **settings)

    return factory


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        await browser.close()


class PageWatch:
    """What a page did that a test must not miss: dialogs opened and script errors."""

    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()


@pytest.fixture
async def open_page(browser: Browser) -> Callable[..., Any]:
    """``page, watch = await open_page(base_url, width=1280, height=720)``; pages close with the test.

    The page's Content-Security-Policy is bypassed: Playwright's waits evaluate strings,
    which it forbids, and the XSS test must prove the UI inserts text as text, not lean on
    the policy blocking inline handlers (test_static checks the header is sent).
    """

    async def factory(base_url: str, width: int = 1280, height: int = 720) -> tuple[Page, PageWatch]:
        context = await browser.new_context(viewport={"width": width, "height": height}, base_url=base_url,
                                            bypass_csp=True)
        page = await context.new_page()
        watch = PageWatch(page)
        return page, watch

    return factory


def base_url(server: Any) -> str:
    return f"http://127.0.0.1:{server.port}"


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path
