"""Who owns each file of the media directory (the ``media_files`` table).

An upload is recorded by :meth:`MediaOwners.record` as it is stored, under a name nobody
knew before; a job's outputs by the worker before it writes them
(:meth:`core.jobs.queue.JobQueue.record_outputs`). So no request can name a file the
server made before its row exists, and a file with no row (copied in by hand) belongs to
``local`` for good. File names are unique and never reused, so an owner never changes
while the file exists: answers, "no row" included, are cached without invalidation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

from core.access.owners import LOCAL
from core.db.pool import Database, DbConnection

CACHE_ENTRIES = 65_536

_RECORD = "INSERT INTO media_files (filename, owner) VALUES ($1, $2) ON CONFLICT (filename) DO NOTHING"
_OWNER = "SELECT owner FROM media_files WHERE filename = $1"


class MediaOwners:
    def __init__(self, db: Database, cache_entries: int = CACHE_ENTRIES) -> None:
        self._db = db
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_entries = cache_entries

    async def record(self, filename: str, owner: str,
                     also: Callable[[DbConnection], Awaitable[object]] | None = None) -> None:
        """Record ``owner`` as ``filename``'s; ``also`` runs in the same transaction (the
        upload's webhook event: committed with the row, or not at all)."""
        async with self._db.acquire() as connection, connection.transaction():
            await connection.execute(_RECORD, filename, owner)
            if also is not None:
                await also(connection)
        self._remember(filename, owner)

    async def owner_of(self, filename: str) -> str:
        owner = self._cache.get(filename)
        if owner is not None:
            self._cache.move_to_end(filename)
            return owner
        async with self._db.acquire() as connection:
            owner = await connection.fetchval(_OWNER, filename)
        owner = LOCAL if owner is None else owner
        self._remember(filename, owner)
        return owner

    def _remember(self, filename: str, owner: str) -> None:
        self._cache[filename] = owner
        if len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)
