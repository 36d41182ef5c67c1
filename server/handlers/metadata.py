"""``GET /api/metadata/{filename}``: a video's probed metadata, cached in Redis.

The name must be a plain ``[A-Za-z0-9._-]`` file name of a regular file directly in the
media directory, else 404 (so ``..`` and friends never reach the file system). The
body is the cached JSON document as Redis holds it, with no encoding: a hit is served
from this process's copy while the file is unchanged (core/kv/metadata_cache.py: an
``lstat``, no Redis round trip), else costs one ``GET``. A file that is not a video
answers its media error (415/422). A document whose browser preview was still being made
when it was cached is read from Redis and re-checked (a stat and the job's row) on every
request until the proxy exists, then cached anew; a job that ended without one makes the
preview ``failed`` with its error.
"""

from __future__ import annotations

import asyncio
import json

from core import storage
from core.kv.metadata_cache import PENDING
from core.media.derived import is_fresh
from core.media.ingest import ingest_operation_id, preview_path
from server.http.request import Request
from server.http.response import HTTPError, Response, raw_json_response
from server.policy.access import check_media_owner, owner_of

ENDED = ("failed", "cancelled")


async def get_metadata(request: Request) -> Response:
    app = request.app
    filename = request.path_params["filename"]
    found = storage.media_stat(app.settings.media_path, filename)
    await check_media_owner(request, filename)
    try:
        document = await app.kv.metadata.get_json(filename, found)
        if PENDING in document:
            document = await _pending(request, filename, document)
    except FileNotFoundError:
        raise HTTPError(404, f"Video {filename} not found") from None
    return raw_json_response(document)


async def _pending(request: Request, filename: str, document: bytes) -> bytes:
    """A document whose preview was pending when cached, brought up to date: ``ready`` once
    the proxy exists, ``failed`` (with the job's ``error``) when its job ended without one;
    a file stored before proxies were made (no job) gets its job now."""
    app = request.app
    src = app.settings.media_path / filename
    if await asyncio.get_running_loop().run_in_executor(None, is_fresh, src, preview_path(src)):
        await app.kv.metadata.invalidate(filename)
        return await app.kv.metadata.get_json(filename)
    owner = await owner_of(request)
    job = await app.jobs.get(owner, ingest_operation_id(filename))
    if job is None:
        await app.uploads.request_preview(owner, filename)
    elif job.status in ENDED:
        metadata = json.loads(document)
        metadata["preview"] = {**metadata["preview"], "status": "failed", "error": job.error}
        return json.dumps(metadata, separators=(",", ":")).encode()
    return document
