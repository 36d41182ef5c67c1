"""Storing a finished upload: probe it, move it into the media directory, record it.

:meth:`UploadStore.store` takes a temporary file that holds every byte of an upload (the
multipart handler's or a finished tus upload's) and either makes it a video of the media
directory or removes it, so the media directory only ever holds whole, probed videos:

1. ingest it in the media pool (deep probe; a stream-written WebM/MKV is remuxed once,
   core/media/ingest.py). Not a usable video: the temporary file is removed and the
   :class:`~core.media.errors.MediaError` (415/422) raised, its sentence naming the file
   as the client called it;
2. rename it into the media directory under a fresh unique name;
3. store its description and keyframe index; then record its owner, and in the same
   transaction (for a source browsers cannot play) the job that makes its browser proxy and
   its ``upload.ready`` webhook event (core/webhooks): all or none, last, so neither an event
   nor a job exists for a file that step 3 then removes again. If anything in step 3 fails
   the stored file is removed again, so no file is left that nobody (or the wrong owner)
   could claim. The name is new and unknown to anyone until it is returned, so no request
   can ask for the file before its owner row;
4. seed the metadata cache, so the first ``GET /api/metadata`` is a hit.

The store is a view over the app's services, made per use (server/app.py), so it always
works with the pool and queue the app holds at that moment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import storage
from core.access.media import MediaOwners
from core.db.pool import DbConnection
from core.jobs.queue import JobQueue
from core.kv.metadata_cache import MetadataCache
from core.media.errors import MediaError
from core.media.ingest import discard, ingest, ingest_operation_id, preview
from core.media.keyframes import store_keyframe_index
from core.media.pool import MediaPool
from core.media.probe import store_description
from core.webhooks.store import emit

INGEST_TIMEOUT = 600.0
"""A deep probe reads every packet (and a stream-written file is remuxed): minutes for hours of media."""


@dataclass(frozen=True, slots=True)
class UploadStore:
    media_dir: Path
    pool: MediaPool
    owners: MediaOwners
    metadata: MetadataCache
    jobs: JobQueue

    async def store(self, temp: Path, client_name: str | None, owner: str) -> dict[str, Any]:
        """Make ``temp`` ``owner``'s video (module docstring); ``{filename, url, metadata}``."""
        loop = asyncio.get_running_loop()
        try:
            metadata, keyframes = await self.pool.run(ingest, str(temp), timeout=INGEST_TIMEOUT)
        except MediaError as error:
            await loop.run_in_executor(None, _unlink, temp)
            raise type(error)(str(error).replace(temp.name, client_name or "The upload")) from None
        except BaseException:
            await loop.run_in_executor(None, _unlink, temp)
            raise
        ext = storage.video_extension(client_name, metadata.get("format"))
        filename = await loop.run_in_executor(None, storage.commit, temp, self.media_dir, ext)
        stored = self.media_dir / filename
        try:
            await loop.run_in_executor(None, store_description, stored, metadata)
            await loop.run_in_executor(None, store_keyframe_index, stored, keyframes)
            playable = metadata["browser_playable"]
            metadata = {**metadata, "preview": preview(stored, metadata)}
            upload = {"filename": filename, "url": storage.video_url(filename), "metadata": metadata}

            async def with_the_owner(connection: DbConnection) -> None:
                if not playable:
                    await self.request_preview(owner, filename, connection)
                await emit(connection, owner, "upload.ready", filename, upload)

            await self.owners.record(filename, owner, with_the_owner)
        except BaseException:
            await asyncio.shield(loop.run_in_executor(None, discard, stored))
            raise
        await self.metadata.put(filename, metadata)
        return upload

    async def request_preview(self, owner: str, filename: str, connection: DbConnection | None = None) -> None:
        """Queue the ``ingest`` job that makes the browser proxy of ``filename`` (once: its
        operation id is the idempotency key, so asking again finds the same job); on
        ``connection`` when given, in its transaction."""
        operation_id = ingest_operation_id(filename)
        job = ("ingest", {"filename": filename})
        if connection is None:
            await self.jobs.enqueue(owner, operation_id, *job, idempotency_key=operation_id)
        else:
            await self.jobs.enqueue_on(connection, owner, operation_id, *job, idempotency_key=operation_id)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
