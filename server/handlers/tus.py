"""tus 1.0 at ``/api/uploads/``: core protocol plus creation, creation-with-upload, expiration,
termination and checksum.

``POST`` creates an upload (``Upload-Length``, ``Upload-Metadata`` with ``filename`` and
``filetype``; 507 on a full disk, leaving nothing); with ``Content-Type:
application/offset+octet-stream`` its body is the first bytes, taken as a PATCH at offset 0
would take them (an error answer removes the upload: the client never learnt its URL).
Every answer about an unfinished upload that changed carries its ``Upload-Expires``.
``HEAD`` tells its offset, ``PATCH`` appends at that offset (409 when the client's
``Upload-Offset`` is not the server's, 460 when ``Upload-Checksum`` does not match: the
bytes of that PATCH are then dropped), ``DELETE`` terminates it. A PATCH cut off by the
network keeps what arrived (unless it carried a checksum, which can no longer
be checked), so the client resumes from ``HEAD``'s offset.

The PATCH that completes an upload probes it like a multipart upload: a video is moved
into the media directory under a new name (headers ``Upload-Video-Filename`` and
``Upload-Video-Url``, and ``GET /api/uploads/{id}`` returns ``{filename, url, metadata}``);
anything else is removed and answered 415/422. Progress goes to WebSocket followers
under the operation id from metadata ``operationId``, else ``upload-<id>``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate

from core import storage
from core.errors import DomainError
from core.media.errors import MediaError
from core.uploads.progress import UploadProgress, operation_id
from core.uploads.resumable import (
    CHECKSUM_ALGORITHMS,
    TUS_EXTENSIONS,
    TUS_VERSION,
    TusError,
    TusStore,
    Upload,
    parse_checksum,
    parse_metadata,
    parse_offset,
)
from server.http.request import Request
from server.http.response import AnyResponse, HTTPError, Response, json_response
from server.policy.access import owner_of

CHECKSUM_MISMATCH = 460
NO_SPACE = "Not enough disk space to store the upload"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
_RESUMABLE = ("tus-resumable", TUS_VERSION)
TusHandler = Callable[[Request, TusStore], Awaitable[AnyResponse]]


def _tus(handler: TusHandler) -> Callable[[Request], Awaitable[AnyResponse]]:
    """Give every response (errors too) ``Tus-Resumable`` and the handler the app's store."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> AnyResponse:
        try:
            if request.method != "OPTIONS":
                _check_version(request)
            response = await handler(request, request.app.tus)
        except DomainError as error:
            error.headers.append(_RESUMABLE)
            raise
        response.headers.append(_RESUMABLE)
        return response

    return wrapped


def _check_version(request: Request) -> None:
    version = request.headers.get("tus-resumable")
    if version != TUS_VERSION:
        raise HTTPError(412, f"Tus-Resumable must be {TUS_VERSION} (got {version or 'none'})",
                        headers=[("tus-version", TUS_VERSION)])


def _operation_id(upload: Upload) -> str:
    return operation_id(upload.metadata.get("operationId"), f"upload-{upload.id}")


def _expires(store: TusStore) -> tuple[str, str]:
    """For an upload changed just now: when it expires unless touched again."""
    return "upload-expires", formatdate(time.time() + store.ttl, usegmt=True)


@_tus
async def options(request: Request, store: TusStore) -> AnyResponse:
    return Response(204, [("tus-version", TUS_VERSION), ("tus-extension", TUS_EXTENSIONS),
                          ("tus-max-size", str(request.app.settings.upload_limit)),
                          ("tus-checksum-algorithm", ",".join(CHECKSUM_ALGORITHMS))])


@_tus
async def create(request: Request, store: TusStore) -> AnyResponse:
    if request.headers.get("upload-defer-length") is not None:
        raise TusError(400, "Upload-Defer-Length is not supported: send Upload-Length")
    length = parse_offset(request.headers.get("upload-length"), "Upload-Length")
    limit = request.app.settings.upload_limit
    if length > limit:
        raise TusError(413, f"Upload-Length {length} is over the upload limit of {limit} bytes")
    if length == 0:
        raise TusError(415, "An empty upload is not a video")
    metadata = parse_metadata(request.headers.get("upload-metadata"))
    filetype = metadata.get("filetype", "")
    if filetype and not filetype.startswith("video/") and filetype != "application/octet-stream":
        raise TusError(415, f"Only videos can be uploaded, not {filetype}")
    with_upload = _content_type(request) == OFFSET_CONTENT_TYPE
    checksum = parse_checksum(request.headers.get("upload-checksum")) if with_upload else None
    owner = await owner_of(request)
    loop = asyncio.get_running_loop()
    try:
        upload = await loop.run_in_executor(None, store.create, length, metadata, owner)
    except OSError as error:
        if storage.is_out_of_space(error):
            raise TusError(507, NO_SPACE) from None
        raise
    if with_upload:
        try:
            async with store.locked(upload.id):
                await _receive(request, store, upload, checksum)
        except BaseException:
            # The client never learns the upload's URL from an error: nobody could resume it.
            await asyncio.shield(loop.run_in_executor(None, store.remove, upload.id))
            raise
    return Response(201, [("location", f"/api/uploads/{upload.id}"), *_offset_headers(store, upload)])


def _content_type(request: Request) -> str:
    return (request.headers.get("content-type") or "").split(";")[0].strip().lower()


async def _get(request: Request, store: TusStore, upload_id: str) -> Upload:
    """The upload, if it exists and is the requester's own (anyone else's is not found)."""
    upload = await asyncio.get_running_loop().run_in_executor(None, store.get, upload_id)
    if upload is None or upload.owner != await owner_of(request):
        raise TusError(404, "Upload not found")
    return upload


@_tus
async def head_or_status(request: Request, store: TusStore) -> AnyResponse:
    """HEAD: the tus offset. GET: the upload as JSON (with the stored video once complete)."""
    upload_id = request.path_params["id"]
    try:
        # Waiting for the lock lets a PATCH cut off a moment ago write its last bytes first.
        async with store.locked(upload_id):
            upload = await _get(request, store, upload_id)
    except TusError as error:
        if error.status != 423:
            raise
        upload = await _get(request, store, upload_id)
    headers = [("upload-offset", str(upload.offset)), ("upload-length", str(upload.length)),
               ("cache-control", "no-store")]
    if request.method == "HEAD":
        return Response(200, headers)
    return json_response({"id": upload.id, "length": upload.length, "offset": upload.offset,
                          "metadata": upload.metadata, "complete": upload.complete, **(upload.result or {})},
                         headers=headers)


@_tus
async def patch(request: Request, store: TusStore) -> AnyResponse:
    if _content_type(request) != OFFSET_CONTENT_TYPE:
        raise TusError(415, f"PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}")
    offset = parse_offset(request.headers.get("upload-offset"), "Upload-Offset")
    checksum = parse_checksum(request.headers.get("upload-checksum"))
    upload_id = request.path_params["id"]
    async with store.locked(upload_id):
        upload = await _get(request, store, upload_id)
        if offset != upload.offset:
            raise HTTPError(409, f"Upload-Offset {offset} does not match the upload's offset {upload.offset}",
                            headers=[("upload-offset", str(upload.offset))])
        if not upload.complete:
            await _receive(request, store, upload, checksum)
        return Response(204, _offset_headers(store, upload))


async def _receive(request: Request, store: TusStore, upload: Upload, checksum: tuple[str, bytes] | None) -> None:
    """Append the body (of a PATCH, or of a POST creating the upload) at the offset; finish at the length."""
    remaining = upload.length - upload.offset
    if request.content_length is not None and request.content_length > remaining:
        raise TusError(413, f"The body is {request.content_length} bytes but only "
                            f"{remaining} remain of the upload")
    upload.offset += await _append(request, store, upload, checksum, remaining)
    if upload.offset == upload.length:
        await _finish(request, store, upload)


async def _append(request: Request, store: TusStore, upload: Upload, checksum: tuple[str, bytes] | None,
                  remaining: int) -> int:
    """Write the request body at the upload's offset; return how many bytes were written."""
    part = store.part_path(upload.id)
    hasher = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
    writer = await storage.AsyncFileWriter.open(part, "r+b", offset=upload.offset, hasher=hasher)
    progress = UploadProgress(request.app.hub.publish, _operation_id(upload), upload.owner, upload.length,
                              done=upload.offset)
    loop = asyncio.get_running_loop()
    try:
        async for chunk in request.stream():
            if writer.written + len(chunk) > remaining:
                raise TusError(413, f"The body is longer than the {remaining} bytes that remain")
            await writer.write(chunk)
            await progress.advance(len(chunk))
        await writer.close()
    except BaseException as error:
        # Cut off by the network without a checksum: keep what came, the client resumes there.
        keep = checksum is None and isinstance(error, (ConnectionError, asyncio.CancelledError))
        if keep:
            await asyncio.shield(writer.close())
        else:
            await asyncio.shield(writer.abort())
            await asyncio.shield(loop.run_in_executor(None, os.truncate, part, upload.offset))
        if storage.is_out_of_space(error):
            raise TusError(507, NO_SPACE) from None
        raise
    if checksum is not None and hasher is not None and hasher.digest() != checksum[1]:
        await loop.run_in_executor(None, os.truncate, part, upload.offset)
        raise TusError(CHECKSUM_MISMATCH, f"Upload-Checksum ({checksum[0]}) does not match the body")
    return writer.written


async def _finish(request: Request, store: TusStore, upload: Upload) -> None:
    """The last byte arrived: store the upload as a video, or remove it and refuse it."""
    app = request.app
    progress = UploadProgress(app.hub.publish, _operation_id(upload), upload.owner, upload.length,
                              done=upload.length)
    loop = asyncio.get_running_loop()
    try:
        result = await app.uploads.store(store.part_path(upload.id), upload.metadata.get("filename"), upload.owner)
    except MediaError as error:
        await loop.run_in_executor(None, store.remove, upload.id)
        await progress.fail(str(error))
        raise
    await loop.run_in_executor(None, store.mark_complete, upload, result)
    await progress.complete(result)


def _offset_headers(store: TusStore, upload: Upload) -> list[tuple[str, str]]:
    headers = [("upload-offset", str(upload.offset))]
    if upload.result is not None:
        headers += [("upload-video-filename", upload.result["filename"]), ("upload-video-url", upload.result["url"])]
    else:
        headers.append(_expires(store))
    return headers


@_tus
async def terminate(request: Request, store: TusStore) -> AnyResponse:
    upload_id = request.path_params["id"]
    async with store.locked(upload_id):
        await _get(request, store, upload_id)
        await asyncio.get_running_loop().run_in_executor(None, store.remove, upload_id)
    return Response(204, [])
