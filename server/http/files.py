"""Files served from disk: one ``Range``, conditional GETs, chunks read off the loop.

Conditional requests follow RFC 9110 section 13.2.2 (:func:`not_modified`): ``If-None-Match``
against the ETag, or, only without it, ``If-Modified-Since`` against ``Last-Modified``;
either answers 304 with the validators and no body.

Range handling follows RFC 9110 section 14: one range (``a-b``, ``a-``, or the suffix
``-n``) gets 206 with ``Content-Range``; a range that starts past the end gets 416 with
``Content-Range: bytes */size``; a header that is malformed, or asks for several ranges,
is ignored and the whole file is sent (which the RFC allows, and which spares the
server multipart/byteranges). ``If-Range`` that does not match the current ETag also
sends the whole file, so a client never splices two versions of a file.

Only a regular file is served, opened without following a symlink (``O_NOFOLLOW``):
a symlink planted where a file is expected answers 404 rather than what it points to.

The ETag is the file's size and modification time, so it changes when the file does
and needs no read of the content. The file is opened once and its size taken from that
open descriptor, so a file replaced mid-request is served consistently.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import stat as file_stat
from collections.abc import AsyncIterator
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO

from core.errors import NotFound
from server.http.request import Request
from server.http.response import HeaderList, Response, StreamingResponse, encode_json

CHUNK = 256 * 1024
# What opening a path that is not a servable regular file fails with: 404, not 500.
_NOT_SERVABLE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ELOOP,
                           errno.ENXIO, errno.ENAMETOOLONG})
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")

WEB_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
"""Content types of the web UI's files by suffix (server/handlers/static.py)."""


def etag_of(stat: os.stat_result) -> str:
    return f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """The inclusive byte range ``(first, last)`` asked for, None to send it all, False if unsatisfiable."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None  # malformed or several ranges: ignore the header
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return False
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # "5-3" is invalid syntax, not an unsatisfiable range
    if start >= size:
        return False
    return start, min(end, size - 1)


def not_modified(request: Request, etag: str, mtime: float) -> bool:
    """Whether a GET/HEAD may be answered 304, by RFC 9110 section 13.2.2's order.

    ``If-None-Match`` decides when present; otherwise ``If-Modified-Since`` does, true when
    its date is not earlier than ``mtime`` at the whole second ``Last-Modified`` states.
    A date that does not parse is ignored, as section 13.1.3 says.
    """
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    since = request.headers.get("if-modified-since")
    if since is None or request.method not in ("GET", "HEAD"):
        return False
    try:
        date = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)  # asctime dates carry no zone: HTTP dates are GMT
    return int(mtime) <= date.timestamp()


def last_modified(mtime: float) -> str:
    return formatdate(mtime, usegmt=True)


def etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match`` semantics: weak comparison over a list, ``*`` matches anything."""
    if header.strip() == "*":
        return True
    strong = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == strong for candidate in header.split(","))


async def serve_file(request: Request, path: Path, content_type: str, *,
                     extra_headers: HeaderList | None = None) -> Response | StreamingResponse:
    """Answer GET/HEAD for ``path`` (NotFound, 404, when it is not a readable regular file)."""
    loop = asyncio.get_running_loop()
    try:
        file, stat = await loop.run_in_executor(None, _open, path)
    except OSError as error:
        if error.errno not in _NOT_SERVABLE:
            raise
        raise NotFound(f"Video {path.name} not found") from None
    try:
        return _respond(request, file, stat, content_type, extra_headers or [])
    except BaseException:
        file.close()
        raise


def _open(path: Path) -> tuple[BinaryIO, os.stat_result]:
    """Open a regular file for reading, never through a symlink (ELOOP) and never blocking on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    file: BinaryIO = os.fdopen(fd, "rb", buffering=0)  # noqa: SIM115 - closed by the chunk iterator
    stat = os.fstat(file.fileno())
    if not file_stat.S_ISREG(stat.st_mode):
        file.close()
        raise OSError(errno.EISDIR, "not a regular file", str(path))
    return file, stat


def _respond(request: Request, file: BinaryIO, stat: os.stat_result, content_type: str,
             extra: HeaderList) -> Response | StreamingResponse:
    size = stat.st_size
    etag = etag_of(stat)
    headers: HeaderList = [("etag", etag), ("last-modified", last_modified(stat.st_mtime)),
                           ("accept-ranges", "bytes"), *extra]
    if not_modified(request, etag, stat.st_mtime):
        file.close()
        return Response(304, headers)
    wanted = parse_range(request.headers.get("range"), size)
    if_range = request.headers.get("if-range")
    if wanted is not None and if_range is not None and if_range.strip() != etag:
        wanted = None
    if wanted is False:
        file.close()
        body = encode_json({"error": f"Range {request.headers.get('range')} is outside the file ({size} bytes)"})
        return Response(416, [("content-type", "application/json"), ("content-range", f"bytes */{size}"),
                              *headers], body)
    headers.append(("content-type", content_type))
    if isinstance(wanted, tuple):
        first, last = wanted
        status = 206
        headers.append(("content-range", f"bytes {first}-{last}/{size}"))
    else:
        first, last, status = 0, size - 1, 200
    length = last - first + 1
    if request.method == "HEAD":
        file.close()
        return StreamingResponse(status, headers, _empty(), length)
    return StreamingResponse(status, headers, read_chunks(file, first, length), length)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


async def read_chunks(file: BinaryIO, offset: int, length: int) -> AsyncIterator[bytes]:
    """``length`` bytes of ``file`` from ``offset``, CHUNK at a time, read in a thread; closes it."""
    loop = asyncio.get_running_loop()
    fd = file.fileno()
    try:
        while length > 0:
            data = await loop.run_in_executor(None, os.pread, fd, min(CHUNK, length), offset)
            if not data:
                # The file shrank under us: cut the response short rather than pad it.
                raise OSError(f"file ended {length} bytes early")
            offset += len(data)
            length -= len(data)
            yield data
    finally:
        file.close()
