"""Media endpoints: multipart upload, file serving, and the timeline derivatives.

* ``POST /api/upload``: the ``video`` field of a multipart body is streamed to a hidden
  temporary file (never held in memory), probed in the media pool, and renamed into the
  media directory under a fresh unique name. Anything that stops it (not a video, a
  corrupt one, over the size limit, a malformed body, a client that goes away) removes
  the temporary file, so the media directory only ever holds whole, probed videos.
  Progress goes to WebSocket followers as ``upload`` operation messages when the app
  has a hub; the client may choose the operation id (``X-Operation-Id`` header or
  ``operationId`` query parameter) to follow it before the upload starts; the id is the
  owner's (the hub keys operations by owner and id), so another owner's use of it is
  neither seen nor disturbed.
* ``GET/HEAD /videos/{filename}``: :func:`server.files.serve_file`.
* ``GET /api/videos/{filename}/thumbnails?count=N``: the filmstrip's JSON, whose
  ``sprite`` is the URL of the JPEG (``/api/videos/{filename}/thumbnails.jpg?count=N``);
  ``GET /api/videos/{filename}/waveform?peaks=N``: the peaks. Both are made in the media
  pool on first request and cached on disk until the source changes; concurrent requests
  for the same derivative share one computation.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from core import storage
from core.media.errors import MediaError
from core.media.filmstrip import MAX_COUNT, cached_filmstrip
from core.media.pool import MediaPool
from core.media.probe import store_description
from core.media.ingest import discard, ingest, ingest_operation_id, preview, preview_path
from core.media.waveform import DEFAULT_PEAKS, MAX_PEAKS, cached_waveform
from server.access import check_media_owner, owner_of
from server.files import serve_file
from server.http.request import Request
from server.http.response import AnyResponse, HTTPError, json_response
from server.multipart import MultipartError, MultipartParser, PartData, PartEnd, PartStart, parse_boundary

if TYPE_CHECKING:
    from server.app import App

log = logging.getLogger("nve.media")

UPLOAD_FIELD = "video"
MULTIPART_OVERHEAD = 1 << 20
"""Body bytes allowed beyond ``upload_limit`` for the multipart framing and other fields."""
DEFAULT_THUMBNAILS = 10
DERIVATIVE_TIMEOUT = 300.0
INGEST_TIMEOUT = 600.0
"""A deep probe reads every packet (and a stream-written file is remuxed): minutes for hours of media."""
_OPERATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_DIGITS = re.compile(r"[0-9]{1,9}")


def register_media_routes(app: App) -> None:
    """Put the media routes on ``app.router`` (``app.media_pool`` must be set before requests)."""
    add = app.router.add
    add("POST", "/api/upload", upload, body_limit=app.settings.upload_limit + MULTIPART_OVERHEAD,
        rate_limited=True)
    add("GET", "/videos/{filename}", get_video)
    add("GET", "/api/videos/{filename}/thumbnails", get_thumbnails)
    add("GET", "/api/videos/{filename}/thumbnails.jpg", get_thumbnail_sprite)
    add("GET", "/api/videos/{filename}/waveform", get_waveform)
    add("GET", "/api/videos/{filename}/preview", get_preview)


def install_media_pool(app: App, size: int = 1, *, warm: bool = True) -> MediaPool:
    """Create ``app.media_pool`` and start/stop it with the app (see MediaPool for ``warm``)."""
    pool = MediaPool(size, warm=warm)
    app.media_pool = pool  # type: ignore[attr-defined]
    app.on_startup.append(pool.start)
    app.on_shutdown.append(pool.close)
    return pool


def media_pool(app: App) -> MediaPool:
    pool = getattr(app, "media_pool", None)
    if pool is None:
        raise RuntimeError("app.media_pool is not set: call install_media_pool(app)")
    return pool


# -- upload ----------------------------------------------------------------------------------


class UploadProgress:
    """Publishes an upload's ``progress`` (whole percents, at most every 100 ms), then its end.

    Silent when the app has no hub or the total size is unknown; a failure to publish
    is logged and never fails the upload.
    """

    INTERVAL = 0.1

    def __init__(self, app: App, operation_id: str, owner: str, total: int | None, done: int = 0) -> None:
        self.operation_id = operation_id
        self._owner = owner
        self._hub = getattr(app, "hub", None)
        self._total = total
        self._done = done
        self._sent = -1
        self._at = 0.0

    async def advance(self, count: int) -> None:
        self._done += count
        if self._hub is None or not self._total:
            return
        percent = min(99, self._done * 100 // self._total)  # 100 is for when it is stored
        now = time.monotonic()
        if percent > self._sent and now - self._at >= self.INTERVAL:
            self._sent, self._at = percent, now
            await self._publish("progress", {"operation": "upload", "progress": percent,
                                             "message": "Uploading"})

    async def complete(self, result: dict[str, Any]) -> None:
        await self._publish("progress", {"operation": "upload", "progress": 100, "message": "Stored"})
        await self._publish("complete", {"result": result})

    async def fail(self, message: str) -> None:
        await self._publish("error", {"error": message})

    async def _publish(self, kind: str, data: dict[str, Any]) -> None:
        if self._hub is None:
            return
        try:
            await self._hub.publish(kind, {"operationId": self.operation_id, **data}, self._owner)
        except Exception:
            log.exception("publishing upload %s %s failed", kind, self.operation_id)


def operation_id(chosen: str | None, default: str) -> str:
    """The client's choice of operation id when it is a valid one, else ``default``."""
    return chosen if chosen and _OPERATION_ID.fullmatch(chosen) else default


def operation_id_of(request: Request) -> str:
    """An upload's operation id: the client's (header or query), else a new one."""
    return operation_id(request.headers.get("x-operation-id") or request.query.get("operationId"),
                        f"upload-{secrets.token_hex(8)}")


async def store_upload(app: App, temp: Path, client_name: str | None, owner: str) -> dict[str, Any]:
    """Ingest a finished upload and move it into the media directory as ``owner``'s; ``{filename, url, metadata}``.

    Not a usable video: the file is removed and the MediaError (415/422) raised as HTTPError.
    The owner, the file's description and (for a source browsers cannot play) the job
    that makes its browser proxy are recorded before the answer; if that fails the stored
    file is removed again, so no file is left that nobody (or the wrong owner) could claim.
    """
    loop = asyncio.get_running_loop()
    try:
        metadata = await media_pool(app).run(ingest, str(temp), timeout=INGEST_TIMEOUT)
    except MediaError as error:
        await loop.run_in_executor(None, _unlink, temp)
        raise HTTPError(error.status, str(error).replace(temp.name, client_name or "The upload")) from None
    except BaseException:
        await loop.run_in_executor(None, _unlink, temp)
        raise
    ext = storage.video_extension(client_name, metadata.get("format"))
    filename = await loop.run_in_executor(None, storage.commit, temp, app.settings.media_path, ext)
    stored = app.settings.media_path / filename
    try:
        await app.access.media.record(filename, owner)
        await loop.run_in_executor(None, store_description, stored, metadata)
        if not metadata["browser_playable"]:
            await request_preview(app, owner, filename)
    except BaseException:
        await asyncio.shield(loop.run_in_executor(None, discard, stored))
        raise
    metadata = {**metadata, "preview": preview(stored, metadata)}
    # The probe just ran: seed the metadata cache so the first GET /api/metadata is a hit.
    await app.kv.metadata.put(filename, metadata)
    return {"filename": filename, "url": storage.video_url(filename), "metadata": metadata}


async def request_preview(app: App, owner: str, filename: str) -> None:
    """Queue the ``ingest`` job that makes the browser proxy of ``filename`` (once: its
    operation id is the idempotency key, so asking again finds the same job)."""
    operation_id = ingest_operation_id(filename)
    await app.jobs.enqueue(owner, operation_id, "ingest", {"filename": filename}, idempotency_key=operation_id)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


async def upload(request: Request) -> AnyResponse:
    """``POST /api/upload``: 201 ``{filename, url, metadata}``."""
    app = request.app
    assert app is not None
    owner = await owner_of(request)
    try:
        boundary = parse_boundary(request.headers.get("content-type"))
    except MultipartError as error:
        raise HTTPError(400, f"{error}, with the file in field '{UPLOAD_FIELD}'") from None
    limit = app.settings.upload_limit
    too_large = HTTPError(413, f"The video is larger than the upload limit of {limit} bytes",
                          extra={"limit": limit}, close=True)
    if request.content_length is not None and request.content_length > request.body_limit:
        raise too_large  # before a byte is read: a client that sent Expect: 100-continue sends none
    progress = UploadProgress(app, operation_id_of(request), owner, request.content_length)
    loop = asyncio.get_running_loop()
    temp = await loop.run_in_executor(None, storage.temp_upload_path, app.settings.media_path)
    writer: storage.AsyncFileWriter | None = None
    state = "before"  # before -> writing -> written: where the `video` part is
    client_name: str | None = None
    parser = MultipartParser(boundary)
    try:
        try:
            async for chunk in request.stream():
                for event in parser.feed(chunk):
                    if isinstance(event, PartData):
                        if state == "writing":
                            assert writer is not None
                            if writer.written + len(event.data) > limit:
                                raise too_large
                            await writer.write(event.data)
                    elif isinstance(event, PartStart):
                        if state == "before" and event.name == UPLOAD_FIELD:
                            state, client_name = "writing", event.filename
                            writer = await storage.AsyncFileWriter.open(temp)
                    elif isinstance(event, PartEnd) and state == "writing":
                        assert writer is not None
                        await writer.close()
                        state = "written"
                await progress.advance(len(chunk))
            parser.finish()
        except MultipartError as error:
            raise HTTPError(400, str(error), close=True) from None
        except OSError as error:
            if storage.is_out_of_space(error):
                raise HTTPError(507, "Not enough disk space to store the upload", close=True) from None
            raise
        except HTTPError as error:
            # A chunked body past the route's allowance: say it in terms of the upload limit.
            raise too_large if error.status == 413 else error from None
        if state != "written":
            raise HTTPError(400, f"Missing file field '{UPLOAD_FIELD}' in the multipart body")
        result = await store_upload(app, temp, client_name, owner)
    except BaseException as error:
        if writer is not None:
            await asyncio.shield(writer.abort())
        await asyncio.shield(loop.run_in_executor(None, _unlink, temp))
        await progress.fail(error.message if isinstance(error, HTTPError) else "The upload did not complete")
        raise
    await progress.complete(result)
    return json_response(result, 201, [("x-operation-id", progress.operation_id)])


# -- serving ---------------------------------------------------------------------------------


async def get_video(request: Request) -> AnyResponse:
    """``GET/HEAD /videos/{filename}``."""
    assert request.app is not None
    name = request.path_params["filename"]
    path = storage.media_file(request.app.settings.media_path, name)
    await check_media_owner(request, name)
    return await serve_file(request, path, storage.content_type(name))


async def get_preview(request: Request) -> AnyResponse:
    """``GET/HEAD /api/videos/{filename}/preview``: the browser proxy (404 until the ingest job made it)."""
    assert request.app is not None
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
    assert app is not None
    media_dir = app.settings.media_path
    src = storage.media_file(media_dir, request.path_params["filename"])
    await check_media_owner(request, src.name)
    cache_dir = storage.working_dir(media_dir / storage.CACHE_DIR)
    try:
        result = await _shared((fn.__name__, str(src), n), lambda: media_pool(app).run(
            fn, str(src), str(cache_dir), n, timeout=DERIVATIVE_TIMEOUT))
    except MediaError as error:
        raise HTTPError(error.status, str(error)) from None
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
