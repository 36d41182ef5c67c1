"""``POST /api/upload``: a multipart upload, streamed to disk and stored as a video.

The ``video`` field of a multipart body is streamed to a hidden temporary file (never held
in memory) and handed to the upload store (core/uploads/store.py), which probes it and
moves it into the media directory under a fresh unique name. Anything that stops it (not a
video, a corrupt one, over the size limit, a malformed body, a client that goes away)
removes the temporary file, so the media directory only ever holds whole, probed videos.

Progress goes to WebSocket followers as ``upload`` operation messages
(core/uploads/progress.py); the client may choose the operation id (``X-Operation-Id``
header or ``operationId`` query parameter) to follow it before the upload starts.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from core import storage
from core.errors import DomainError
from core.uploads.progress import UploadProgress, operation_id
from server.http.multipart import (
    MultipartError,
    MultipartParser,
    PartData,
    PartEnd,
    PartStart,
    parse_boundary,
)
from server.http.request import Request
from server.http.response import AnyResponse, HTTPError, json_response
from server.policy.access import owner_of

UPLOAD_FIELD = "video"


def operation_id_of(request: Request) -> str:
    """An upload's operation id: the client's (header or query), else a new one."""
    return operation_id(request.headers.get("x-operation-id") or request.query.get("operationId"),
                        f"upload-{secrets.token_hex(8)}")


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


async def upload(request: Request) -> AnyResponse:
    """``POST /api/upload``: 201 ``{filename, url, metadata}``."""
    app = request.app
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
    progress = UploadProgress(app.hub.publish, operation_id_of(request), owner, request.content_length)
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
        result = await app.uploads.store(temp, client_name, owner)
    except BaseException as error:
        if writer is not None:
            await asyncio.shield(writer.abort())
        await asyncio.shield(loop.run_in_executor(None, _unlink, temp))
        await progress.fail(str(error) if isinstance(error, DomainError) else "The upload did not complete")
        raise
    await progress.complete(result)
    return json_response(result, 201, [("x-operation-id", progress.operation_id)])
