"""``GET /api/metadata/{filename}``: a video's probed metadata, cached in Redis.

The name must be a plain ``[A-Za-z0-9._-]`` file name of a regular file directly in the
media directory, else 404 (so ``..`` and friends never reach the file system). The
body is the cached JSON document as Redis holds it: a hit costs one ``GET`` and no
encoding. A file that is not a video answers its media error (415/422).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import storage
from core.media.errors import MediaError
from core.media.probe import probe
from server.access import check_media_owner
from server.handlers.media import media_pool
from server.http.request import Request
from server.http.response import HTTPError, Response, raw_json_response

if TYPE_CHECKING:
    from server.app import App


def register_metadata_routes(app: App) -> None:
    app.router.add("GET", "/api/metadata/{filename}", get_metadata)


def pooled_probe(app: App) -> Callable[[Path], Awaitable[dict[str, Any]]]:
    """The cache's probe: :func:`core.media.probe.probe` in the app's media worker pool."""

    async def run(path: Path) -> dict[str, Any]:
        return await media_pool(app).run(probe, str(path))

    return run


async def get_metadata(request: Request) -> Response:
    app = request.app
    filename = request.path_params["filename"]
    storage.media_file(app.settings.media_path, filename)
    await check_media_owner(request, filename)
    try:
        document = await app.kv.metadata.get_json(filename)
    except MediaError as error:
        raise HTTPError(error.status, str(error)) from None
    except FileNotFoundError:
        raise HTTPError(404, f"Video {filename} not found") from None
    return raw_json_response(document)
