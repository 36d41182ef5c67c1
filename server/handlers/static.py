"""The bundled web UI: ``GET /`` (the editor page) and ``GET /static/...`` (its files).

Only files under ``server/static`` are ever served. A request path is resolved
segment by segment: empty, dot and hidden segments, backslashes and NUL bytes are
refused before touching the filesystem, and the resolved path (symlinks followed) must
still lie under the static root, so ``..`` in any spelling is a 404, never a file from
elsewhere. Files are small and few, so each is read whole in the loop's executor.

There is no build step and file names carry no fingerprint, so responses say
``Cache-Control: no-cache`` (the routes' ``SHARED`` policy, server/http/caching.py) with a strong
``ETag`` (size and mtime) and ``Last-Modified``: a browser revalidates and gets 304 until
the file changes, and never runs yesterday's module. ``GET /`` is per owner instead
(``private``), as it may set the session cookie.
The page's Content-Security-Policy allows scripts, styles and connections only from
this origin: a defence in depth behind the UI's rule of never inserting user text as HTML.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from server.http.files import WEB_CONTENT_TYPES, etag_of, last_modified, not_modified
from server.http.request import Request
from server.http.response import HTTPError, Response
from server.policy.access import browser_session_cookie

STATIC_ROOT = Path(__file__).resolve().parent.parent / "static"
URL_PREFIX = "/static/"
_NAME_MAX = 255
"""Bytes in one file name on Linux file systems (NAME_MAX)."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


async def index(request: Request) -> Response:
    """``GET /``: the editor page (starting a browser session where one is needed, see server/policy/access.py)."""
    response = await _serve(request, STATIC_ROOT / "index.html")
    response.headers.extend(await browser_session_cookie(request))
    return response


async def static_file(request: Request) -> Response:
    """``GET /static/<path>``: a file under ``server/static``, or 404."""
    return await _serve(request, resolve(request.path.removeprefix(URL_PREFIX)))


def resolve(relative: str) -> Path:
    """The file ``relative`` names under the static root; HTTPError 404 for anything else."""
    parts = relative.split("/")
    if any(_unsafe(part) for part in parts):
        raise _not_found(relative)
    path = STATIC_ROOT.joinpath(*parts).resolve()
    if not path.is_relative_to(STATIC_ROOT) or not path.is_file():
        raise _not_found(relative)
    return path


def _unsafe(segment: str) -> bool:
    """Empty (``//``, a leading or trailing ``/``), dot or hidden, a byte some OS reads as a separator,
    or longer than any file name may be (the file system would refuse it with ENAMETOOLONG)."""
    return (not segment or segment.startswith(".") or "\\" in segment or "\x00" in segment
            or len(segment.encode()) > _NAME_MAX)


def _not_found(relative: str) -> HTTPError:
    return HTTPError(404, f"No such file: /static/{relative}")


async def _serve(request: Request, path: Path) -> Response:
    loop = asyncio.get_running_loop()
    try:
        stat, body = await loop.run_in_executor(None, _read, path)
    except FileNotFoundError:
        raise _not_found(str(path.relative_to(STATIC_ROOT))) from None
    tag = etag_of(stat)
    headers = [("etag", tag), ("last-modified", last_modified(stat.st_mtime)), ("x-content-type-options", "nosniff")]
    if path.suffix == ".html":
        headers.append(("content-security-policy", CONTENT_SECURITY_POLICY))
    if not_modified(request, tag, stat.st_mtime):
        return Response(304, headers)
    headers.append(("content-type", WEB_CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")))
    return Response(200, headers, body)


def _read(path: Path) -> tuple[os.stat_result, bytes]:
    with path.open("rb") as file:
        return os.fstat(file.fileno()), file.read()

