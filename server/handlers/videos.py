"""A stored video and what is made from it: the file, its browser preview, filmstrip and waveform.

* ``GET/HEAD /videos/{filename}``: the file (server/http/files.py: Range, ETag, 304).
* ``GET/HEAD /api/videos/{filename}/preview``: the browser proxy the ingest job makes for a
  source browsers cannot play (404 until it exists).
* ``GET /api/videos/{filename}/thumbnails?count=N``: the filmstrip's JSON, whose
  ``sprite`` is the URL of the JPEG (``/api/videos/{filename}/thumbnails.jpg?count=N``);
  ``GET /api/videos/{filename}/waveform?peaks=N``: the peaks. Both are made in the media
  pool on first request and cached on disk until the source changes; concurrent requests
  for the same derivative share one computation.

Every one is the owner's alone: another owner's file is a 404, as an unknown one is.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from core import storage
from core.media.filmstrip import MAX_COUNT, cached_filmstrip
from core.media.ingest import preview_path
from core.media.waveform import DEFAULT_PEAKS, MAX_PEAKS, cached_waveform
from server.http.files import serve_file
from server.http.request import Request
from server.http.response import AnyResponse, HTTPError, json_response
from server.policy.access import check_media_owner

DEFAULT_THUMBNAILS = 10
DERIVATIVE_TIMEOUT = 300.0
_DIGITS = re.compile(r"[0-9]{1,9}")


async def get_video(request: Request) -> AnyResponse:
    """``GET/HEAD /videos/{filename}``."""
    name = request.path_params["filename"]
    path = storage.media_file(request.app.settings.media_path, name)
    await check_media_owner(request, name)
    return await serve_file(request, path, storage.content_type(name))


async def get_preview(request: Request) -> AnyResponse:
    """``GET/HEAD /api/videos/{filename}/preview``: the browser proxy (404 until the ingest job made it)."""
    name = request.path_params["filename"]
    src = storage.media_file(request.app.settings.media_path, name)
    await check_media_owner(request, name)
    proxy = preview_path(src)
    if not storage.is_regular_file(proxy):
        raise HTTPError(404, f"The preview of {name} is not ready (see its metadata's preview)")
    return await serve_file(request, proxy, "video/mp4")


# -- derivatives -----------------------------------------------------------------------------

_inflight: dict[tuple[Any, ...], asyncio.Task[Any]] = {}


async def _shared(key: tuple[Any, ...], make: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``make()`` once for all concurrent callers with the same ``key``."""
    task = _inflight.get(key)
    if task is None:
        task = asyncio.ensure_future(make())
        _inflight[key] = task
        task.add_done_callback(lambda _: _inflight.pop(key, None))
    return await asyncio.shield(task)


async def _derive(request: Request, fn: Callable[..., Any], n: int) -> tuple[Path, dict[str, Any]]:
    app = request.app
    media_dir = app.settings.media_path
    src = storage.media_file(media_dir, request.path_params["filename"])
    await check_media_owner(request, src.name)
    cache_dir = storage.working_dir(media_dir / storage.CACHE_DIR)
    result = await _shared((fn.__name__, str(src), n), lambda: app.media_pool.run(
        fn, str(src), str(cache_dir), n, timeout=DERIVATIVE_TIMEOUT))
    return src, result


def _int_query(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= high:
        raise HTTPError(400, f"Query parameter '{name}' must be an integer from 1 to {high}", extra={"field": name})
    return int(raw)


def sprite_url(filename: str, count: int) -> str:
    return f"/api/videos/{quote(filename)}/thumbnails.jpg?count={count}"


async def get_thumbnails(request: Request) -> AnyResponse:
    """``GET /api/videos/{filename}/thumbnails?count=N`` (default 10)."""
    count = _int_query(request, "count", DEFAULT_THUMBNAILS, MAX_COUNT)
    src, result = await _derive(request, cached_filmstrip, count)
    return json_response({**result, "sprite": sprite_url(src.name, count)})


async def get_thumbnail_sprite(request: Request) -> AnyResponse:
    """``GET /api/videos/{filename}/thumbnails.jpg?count=N``: the filmstrip's JPEG."""
    count = _int_query(request, "count", DEFAULT_THUMBNAILS, MAX_COUNT)
    src, result = await _derive(request, cached_filmstrip, count)
    path = src.parent / storage.CACHE_DIR / result["sprite"]
    return await serve_file(request, path, "image/jpeg")


async def get_waveform(request: Request) -> AnyResponse:
    """``GET /api/videos/{filename}/waveform?peaks=N`` (default 1000)."""
    peaks = _int_query(request, "peaks", DEFAULT_PEAKS, MAX_PEAKS)
    _, result = await _derive(request, cached_waveform, peaks)
    return json_response(result)
