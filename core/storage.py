"""Files in the media directory: safe names, uploads written off the event loop, atomic commits.

Every name a client can send (a URL path segment) goes through :func:`media_file`, which
accepts only ``[A-Za-z0-9._-]`` names that do not start with a dot, so ``..``, encoded
slashes, absolute paths and hidden files never reach the file system, and only regular
files: a symlink is never followed, so one planted in the media directory (to
``/etc/passwd``, or to a video elsewhere) is a 404, never a way out of it. Hidden
directories inside the media directory hold what must not be served: uploads in
progress (``.uploads``), tus partials (``.tus``) and cached derivatives (``.cache``).
They are created as real directories (:func:`working_dir` replaces a symlink planted in
their place), so what the server writes and cleans up there stays inside. They are on the
same file system as the media files, so finishing an upload is one
atomic ``rename``: a reader sees a whole file under its final name or none.

Server-side names are never derived from the client's path: :func:`new_filename` makes a
unique one and keeps at most a known video extension.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import re
import secrets
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from core.errors import NotFound

if TYPE_CHECKING:
    # "rb", "xb", "r+b"...: open() in such a mode is typed as returning a BinaryIO.
    from _typeshed import OpenBinaryMode

log = logging.getLogger("nve.storage")

SAFE_NAME = r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}"
"""A media file name (also the OpenAPI document's pattern for one)."""
_SAFE_NAME = re.compile(SAFE_NAME)
UPLOADS_DIR = ".uploads"
CACHE_DIR = ".cache"

CONTENT_TYPES = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska",
    ".webm": "video/webm", ".avi": "video/x-msvideo", ".ts": "video/mp2t", ".mpg": "video/mpeg",
    ".mpeg": "video/mpeg", ".ogv": "video/ogg", ".3gp": "video/3gpp", ".flv": "video/x-flv",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".json": "application/json",
    ".m4a": "audio/mp4", ".mp3": "audio/mpeg", ".wav": "audio/wav", ".aac": "audio/aac",
}
VIDEO_EXTENSIONS = frozenset(ext for ext, kind in CONTENT_TYPES.items() if kind.startswith("video/"))
# FFmpeg demuxer name (probe's ``format``, first entry) -> the extension a file of it gets.
_FORMAT_EXTENSIONS = {"mov": ".mp4", "matroska": ".mkv", "avi": ".avi", "mpegts": ".ts", "mpeg": ".mpg",
                      "ogg": ".ogv", "flv": ".flv"}
WRITE_BUFFER = 1 << 20


def is_out_of_space(error: BaseException) -> bool:
    """Whether ``error`` says the filesystem (or the user's quota) is full."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def is_safe_name(name: str) -> bool:
    """True for a plain file name of ``[A-Za-z0-9._-]`` not starting with a dot."""
    return _SAFE_NAME.fullmatch(name) is not None


def is_regular_file(path: Path) -> bool:
    """True for a regular file itself: a symlink (to anything) or a missing path is False."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return False


def media_file(media_dir: Path, name: str) -> Path:
    """The regular file ``name`` directly inside ``media_dir``; NotFound (404) otherwise."""
    media_stat(media_dir, name)
    return media_dir / name


def media_stat(media_dir: Path, name: str) -> os.stat_result:
    """The ``lstat`` of the regular file ``name`` directly inside ``media_dir``; NotFound (404)
    otherwise. One system call on a string path: the metadata hit path pays nothing else for the
    check (no ``Path`` objects), and hands the result on as the file's identity."""
    if not is_safe_name(name):
        raise NotFound(f"Video {name!r} not found")
    try:
        found = os.lstat(f"{media_dir}{os.sep}{name}")
    except OSError:
        raise NotFound(f"Video {name} not found") from None
    if not stat.S_ISREG(found.st_mode):  # a symlink (to anything) or a directory
        raise NotFound(f"Video {name} not found")
    return found


def video_url(filename: str) -> str:
    """Where ``GET /videos/{filename}`` serves a file of the media directory."""
    return f"/videos/{filename}"


def preview_url(filename: str) -> str:
    """Where the browser proxy of a file of the media directory is served."""
    return f"/api/videos/{filename}/preview"


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")


def video_extension(client_name: str | None, probed_format: str | None) -> str:
    """The extension a stored upload gets: the client's if it is a video one, else the format's."""
    ext = os.path.splitext(client_name or "")[1].lower()
    if ext in VIDEO_EXTENSIONS:
        return ext
    first = (probed_format or "").split(",")[0]
    return _FORMAT_EXTENSIONS.get(first, ".mp4")


def new_filename(ext: str) -> str:
    """A unique server-side name: milliseconds since the epoch, 48 random bits, ``ext``."""
    if ext and not is_safe_name("x" + ext):
        raise ValueError(f"unsafe extension {ext!r}")
    return f"{int(time.time() * 1000)}-{secrets.token_hex(6)}{ext}"


def commit(src: Path, media_dir: Path, ext: str) -> str:
    """Move a finished file into ``media_dir`` under a new unique name (atomic); return the name."""
    while True:
        name = new_filename(ext)
        target = media_dir / name
        try:
            # link() refuses to overwrite, so two nodes can never pick the same name.
            os.link(src, target)
        except FileExistsError:
            continue
        except OSError:
            # A shared volume without hard links: 48 random bits make a clash negligible.
            os.replace(src, target)
            return name
        os.unlink(src)
        return name


class AsyncFileWriter:
    """Appends to a file from the event loop with the writes in a thread.

    Small chunks are gathered into ``WRITE_BUFFER`` bytes before a write; while one write
    runs in the executor the loop goes on receiving the next chunk, and at most one write
    is in flight, so memory stays bounded by two buffers. An optional ``hasher`` (a
    hashlib object) is updated in the same thread, off the loop.
    """

    def __init__(self, file: BinaryIO, hasher: hashlib._Hash | None = None) -> None:
        self._file = file
        self._hasher = hasher
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._pending: asyncio.Future[None] | None = None
        self.written = 0
        """Bytes handed to :meth:`write` so far."""

    @classmethod
    async def open(cls, path: Path, mode: OpenBinaryMode = "xb", offset: int | None = None,
                   hasher: hashlib._Hash | None = None) -> AsyncFileWriter:
        def opener() -> BinaryIO:
            file: BinaryIO = open(path, mode)  # noqa: SIM115 - closed by close()
            if offset is not None:
                file.seek(offset)
            return file

        return cls(await asyncio.get_running_loop().run_in_executor(None, opener), hasher)

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.written += len(data)
        if len(self._buffer) >= WRITE_BUFFER:
            await self._flush_buffer()

    async def _flush_buffer(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending
        if self._buffer:
            chunk, self._buffer = bytes(self._buffer), bytearray()
            self._pending = self._loop.run_in_executor(None, self._write_sync, chunk)

    def _write_sync(self, chunk: bytes) -> None:
        if self._hasher is not None:
            self._hasher.update(chunk)
        self._file.write(chunk)

    async def close(self) -> None:
        """Write what is buffered, wait for it, and close."""
        try:
            await self._flush_buffer()
            if self._pending is not None:
                pending, self._pending = self._pending, None
                await pending
        finally:
            await self._loop.run_in_executor(None, self._close_sync)

    async def abort(self) -> None:
        """Close without writing what is buffered (the caller removes the file)."""
        self._buffer.clear()
        pending, self._pending = self._pending, None
        try:
            if pending is not None:
                await asyncio.shield(pending)
        except OSError:
            pass
        finally:
            await self._loop.run_in_executor(None, self._close_sync)

    def _close_sync(self) -> None:
        if not self._file.closed:
            self._file.close()


def working_dir(path: Path) -> Path:
    """``path`` as a real directory (created if needed): a symlink or file in its place is removed first.

    The hidden working directories are written to and cleaned up by the server; a symlink
    planted there would send those writes (and :func:`remove_stale`'s deletions) out of
    the media directory. Removing a symlink never touches what it points to.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISDIR(mode):
        log.warning("replacing %s (not a directory: a symlink or file) with a directory", path)
        path.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


def temp_upload_path(media_dir: Path) -> Path:
    """A fresh path in the hidden uploads directory (created if needed)."""
    return working_dir(media_dir / UPLOADS_DIR) / f"{secrets.token_hex(12)}.part"


def remove_stale(directory: Path, older_than: float, now: float | None = None) -> list[Path]:
    """Delete files in ``directory`` not modified for ``older_than`` seconds; return them.

    ``directory`` itself is opened without following a symlink, so one planted in its
    place cannot turn this into a deletion of old files elsewhere.
    """
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return removed
    except OSError as error:
        if error.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        log.warning("not cleaning %s: it is not a directory (a symlink?)", directory)
        return removed
    try:
        for entry in list(os.scandir(fd)):
            try:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > older_than
                if entry.is_file(follow_symlinks=False) and stale:
                    os.unlink(entry.name, dir_fd=fd)
                    removed.append(directory / entry.name)
            except FileNotFoundError:
                continue
    finally:
        os.close(fd)
    return removed
