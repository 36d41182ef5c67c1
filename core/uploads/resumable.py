"""tus 1.0 resumable uploads: header rules and the on-disk upload store (no HTTP here).

State lives only on disk, next to the partial file, in ``MEDIA_DIR/.tus``: for upload
``<id>`` the bytes so far (``<id>.part``, whose size IS the offset, so the offset can never
disagree with the data), its description (``<id>.json``: length, metadata, creation time,
and once finished the stored video), and ``<id>.lock``. Any node that shares MEDIA_DIR
can therefore answer for and resume any upload.

One request at a time per upload, on every node: a request takes ``flock`` on the lock
file (an exclusive lock per open file, so it holds between requests of one process as
well as between processes; Linux NFS clients map it onto NFS byte-range locks), plus an
in-process guard for file systems where flock is per process. A request that finds the
upload locked waits briefly, because the usual holder is the previous PATCH of a client
that just reconnected and is about to notice its peer went away.

Uploads not touched for ``ttl`` seconds are removed by :meth:`TusStore.cleanup`, and so
are the hidden temporaries (``.<id>.json.<random>``) of descriptions being rewritten that
a crash left behind. A create that fails (a full disk) removes what it made before it
raises, so only a crash leaves debris for the sweep.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import storage
from core.access.owners import LOCAL
from core.errors import DomainError
from core.storage import working_dir

log = logging.getLogger("nve.tus")

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,expiration,termination,checksum"
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256}
DEFAULT_TTL = 24 * 3600.0
LOCK_WAIT = 3.0
_ID = re.compile(r"[0-9a-f]{32}")
_TEMPORARY = re.compile(r"\.[0-9a-f]{32}\.json\.[0-9a-f]{8}")  # what _save writes before its rename
_METADATA_KEY = re.compile(r"[^\s,]+")
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() would take "\u0663"


class TusError(DomainError):
    """A request that breaks the protocol: ``status`` and a sentence for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` (value optional)."""
    metadata: dict[str, str] = {}
    if not header or not header.strip():
        return metadata
    for pair in header.split(","):
        key, _, encoded = pair.strip().partition(" ")
        if not _METADATA_KEY.fullmatch(key) or key in metadata:
            raise TusError(400, f"Upload-Metadata has an invalid or repeated key {key!r}")
        try:
            value = base64.b64decode(encoded.strip(), validate=True)
            metadata[key] = value.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise TusError(400, f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text") from None
    return metadata


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """``Upload-Checksum: <algorithm> <base64 digest>`` as (algorithm, digest)."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise TusError(400, f"Upload-Checksum algorithm {algorithm!r} is not supported "
                            f"(use one of {', '.join(CHECKSUM_ALGORITHMS)})")
    try:
        return algorithm, base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise TusError(400, "Upload-Checksum digest is not base64") from None


def parse_offset(value: str | None, name: str) -> int:
    if value is None or not _DIGITS.fullmatch(value):
        raise TusError(400, f"{name} must be a non-negative integer")
    return int(value)


def is_upload_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


@dataclass(slots=True)
class Upload:
    """What ``<id>.json`` holds, and the offset read from the partial file."""

    id: str
    length: int
    metadata: dict[str, str]
    created: float
    offset: int = 0
    owner: str = LOCAL
    """Who created it: only they may see, resume or terminate it."""
    result: dict[str, Any] | None = None
    """``{filename, url, metadata}`` once the upload was stored as a video."""

    @property
    def complete(self) -> bool:
        return self.result is not None


class TusStore:
    """The uploads in one directory; every method is blocking except :meth:`locked`."""

    def __init__(self, directory: Path, ttl: float = DEFAULT_TTL) -> None:
        self.directory = directory
        self.ttl = ttl
        self._held: set[str] = set()

    def _path(self, upload_id: str, suffix: str) -> Path:
        return self.directory / f"{upload_id}{suffix}"

    def part_path(self, upload_id: str) -> Path:
        return self._path(upload_id, ".part")

    def create(self, length: int, metadata: dict[str, str], owner: str = LOCAL) -> Upload:
        working_dir(self.directory)  # never through a symlink planted as .tus
        upload = Upload(secrets.token_hex(16), length, metadata, time.time(), owner=owner)
        try:
            self._path(upload.id, ".lock").touch(exist_ok=False)
            self.part_path(upload.id).touch(exist_ok=False)
            self._save(upload)  # last: an upload exists once its description does
        except BaseException:
            self.remove(upload.id)  # e.g. a full disk: an upload nobody can find must not stay
            raise
        return upload

    def _save(self, upload: Upload) -> None:
        data = {"length": upload.length, "metadata": upload.metadata, "created": upload.created,
                "owner": upload.owner, "result": upload.result}
        path = self._path(upload.id, ".json")
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        try:
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get(self, upload_id: str) -> Upload | None:
        """The upload with its current offset, or None (unknown, terminated, expired)."""
        if not is_upload_id(upload_id):
            return None
        try:
            data = json.loads(self._path(upload_id, ".json").read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        upload = Upload(upload_id, data["length"], data["metadata"], data["created"],
                        owner=data.get("owner", LOCAL), result=data.get("result"))
        if upload.complete:
            upload.offset = upload.length
        else:
            try:
                upload.offset = self.part_path(upload_id).stat().st_size
            except FileNotFoundError:
                return None
        return upload

    def touched(self, upload_id: str) -> float:
        """When the upload last changed (creation, or the last byte written)."""
        times = []
        for suffix in (".part", ".json"):
            with contextlib.suppress(FileNotFoundError):
                times.append(self._path(upload_id, suffix).stat().st_mtime)
        return max(times, default=0.0)

    def mark_complete(self, upload: Upload, result: dict[str, Any]) -> None:
        upload.result = result
        self._save(upload)

    def remove(self, upload_id: str) -> None:
        for suffix in (".json", ".part", ".lock"):
            self._path(upload_id, suffix).unlink(missing_ok=True)

    @contextlib.asynccontextmanager
    async def locked(self, upload_id: str, wait: float = LOCK_WAIT) -> AsyncIterator[None]:
        """Hold the upload's lock (on every node) for the block; TusError 404 / 423."""
        if not is_upload_id(upload_id):
            raise TusError(404, "Upload not found")
        deadline = time.monotonic() + wait
        while upload_id in self._held:
            if time.monotonic() >= deadline:
                raise TusError(423, "The upload is locked by another request")
            await asyncio.sleep(0.02)
        self._held.add(upload_id)
        try:
            path = self._path(upload_id, ".lock")
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                raise TusError(404, "Upload not found") from None
            try:
                while not _try_flock(fd):
                    if time.monotonic() >= deadline:
                        raise TusError(423, "The upload is locked by another request")
                    await asyncio.sleep(0.02)
                # Terminated while we waited: the lock we hold is on a removed file.
                try:
                    if os.stat(path).st_ino != os.fstat(fd).st_ino:
                        raise TusError(404, "Upload not found")
                except FileNotFoundError:
                    raise TusError(404, "Upload not found") from None
                yield
            finally:
                os.close(fd)  # releases the flock
        finally:
            self._held.discard(upload_id)

    def cleanup(self, now: float | None = None) -> list[str]:
        """Remove uploads untouched for ``ttl`` seconds that nobody holds; return their ids.

        Hidden temporaries as old go too (a crash between writing one and renaming it).
        """
        now = time.time() if now is None else now
        removed: list[str] = []
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return removed
        for name in filter(_TEMPORARY.fullmatch, names):
            temporary = self.directory / name
            with contextlib.suppress(FileNotFoundError):
                if now - temporary.stat().st_mtime > self.ttl:
                    temporary.unlink()
        ids = {name.partition(".")[0] for name in names if is_upload_id(name.partition(".")[0])}
        for upload_id in ids:
            if upload_id in self._held or now - self.touched(upload_id) <= self.ttl:
                continue
            lock = self._path(upload_id, ".lock")
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:
                self.remove(upload_id)  # debris of a crash mid-create or mid-remove
                removed.append(upload_id)
                continue
            try:
                if _try_flock(fd):
                    self.remove(upload_id)
                    removed.append(upload_id)
            finally:
                os.close(fd)
        return removed


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


async def clean_once(store: TusStore, media_dir: Path) -> None:
    """Remove expired tus uploads and the multipart temporaries a crashed process left in ``media_dir``."""
    loop = asyncio.get_running_loop()
    removed = await loop.run_in_executor(None, store.cleanup)
    stale = await loop.run_in_executor(None, storage.remove_stale, media_dir / storage.UPLOADS_DIR, store.ttl)
    if removed or stale:
        log.info("removed %d expired tus uploads and %d stale upload files", len(removed), len(stale))


async def clean_periodically(store: TusStore, media_dir: Path, interval: float = 600.0) -> None:
    """:func:`clean_once` every ``interval`` seconds until cancelled; a failed sweep is logged."""
    while True:
        try:
            await clean_once(store, media_dir)
        except Exception:
            log.exception("cleaning up expired uploads failed")
        await asyncio.sleep(interval)
