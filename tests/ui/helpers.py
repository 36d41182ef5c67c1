"""What several UI tests do: put a clip and a project on the server (REST API), open the editor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.media.clips import make_clip


def clip_file(directory: Path, name: str = "clip.mp4", seconds: float = 3.0) -> Path:
    """A tiny H.264/AAC clip (320x240) made fresh for the test."""
    return make_clip(directory / name, seconds=seconds)


async def upload(base_url: str, path: Path) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        with path.open("rb") as file:
            response = await client.post("/api/upload", files={"video": (path.name, file, "video/mp4")})
        response.raise_for_status()
        return response.json()


async def create_project(base_url: str, uploaded: dict[str, Any], name: str, **timeline: Any) -> dict[str, Any]:
    state = {"currentTime": 0, "zoom": 1, "markers": [], "edits": [], **timeline}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.post("/api/projects", json={
            "name": name, "videoFilename": uploaded["filename"], "videoUrl": uploaded["url"], "timelineState": state})
        response.raise_for_status()
        return response.json()


async def get_project(base_url: str, project_id: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.get(f"/api/projects/{project_id}")
        response.raise_for_status()
        return response.json()


async def open_editor(page: Page, project_id: int) -> None:
    """Open the project in the editor and wait until its timeline and player are ready."""
    await page.goto(f"/#/projects/{project_id}")
    await expect(page.locator("#timeline")).to_have_attribute("data-filmstrip", "30", timeout=30_000)
    await page.wait_for_function("document.querySelector('#player').readyState >= 2")
