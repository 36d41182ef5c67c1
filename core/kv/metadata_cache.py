"""Media metadata cached in Redis at ``metadata:{filename}`` (docs/CONTRACT.md section 2, Media).

The key is in the deployment's namespace (``NVE_REDIS_PREFIX``, see core/kv/client.py).

Redis is the one cache all nodes share: a miss here reads it before probing. A miss probes
the file (PyAV, off the event loop when the probe is synchronous) and stores the result
with a TTL (3600 s by default). Concurrent requests for one file share a single flight:
100 simultaneous misses cost one lookup and one probe. The lookups of all the flights
that start in one turn of the event loop go to Redis as one ``MGET`` (auto-pipelining, as
ioredis does it): under load one round trip serves many requests.

This process keeps a bounded copy (``local_size`` entries) of the documents it saw most
recently, each with the identity of the file it describes, taken before the document was
looked up or probed: ``lstat``'s inode, device, size, mtime and ctime. A hit is a dict
lookup and that ``lstat``, with no Redis round trip, while the file's identity is still
the one recorded and Redis confirmed the copy (or it was probed here) in the current
period of ``recheck`` seconds (1 s by default, at most the TTL). The periods are aligned
on the clock, so the copies of all the files in use fall due together and their lookups
share a few ``MGET`` commands. A document describes its file and nothing else, so a file
replaced (renamed over: a new inode) or deleted on another node of a shared media volume
stops matching at once. What could still change a document while its file stays the
same reaches the copy within ``recheck``: an invalidation by another node, the TTL's
expiry in Redis, a rewrite in place of the same size within one tick of the kernel's file
timestamps (our writers never rewrite in place: they rename). A document whose browser
preview is still being made (:data:`PENDING`) changes while its file does not, so it is
never served from the copy while Redis is up: it is read from Redis every time, as the
handler re-checks it. The ``lstat`` is a syscall: a few microseconds on a local disk; on
shared storage (NFS) usually answered from the client's attribute cache, which can lag
another node's change by its ``actimeo`` (as every read of the file does), and at worst
a round trip to the file server, like Redis'.

While Redis is unavailable, reads are answered from that copy whatever its age up to the
TTL and whatever the preview's state (still only for the file identity it was taken of),
so an outage does not turn every request into a probe; what is not there is probed (still
one flight per file).

:meth:`MetadataCache.invalidate` is called when a file is deleted or replaced. It empties
this process's copy and Redis at once (other nodes' copies within ``recheck``). A probe or
lookup that was in flight when an invalidation happened does not store its (possibly
stale) result.

Counters: ``nve_metadata_cache_hits_total`` (served from the cache, this process's copy
included, and requests that joined such a flight), ``nve_metadata_cache_misses_total``
(requests that probed) and ``nve_metadata_cache_coalesced_total`` (requests that waited on
another request's probe). :meth:`MetadataCache.hit_ratio` is the hit share of the most
recent ``window`` requests.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import math
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, NamedTuple, cast

import msgspec
from prometheus_client import Counter

from core.batch import TurnBatcher
from core.kv.connection import KvUnavailable, RedisConnection
from core.registry import REGISTRY

HITS = Counter("nve_metadata_cache_hits",
               "Metadata requests answered from the cache (Redis; the local copy while it is down).",
               registry=REGISTRY)
MISSES = Counter("nve_metadata_cache_misses", "Metadata requests that probed the file.",
                 registry=REGISTRY)
COALESCED = Counter("nve_metadata_cache_coalesced",
                    "Metadata requests that waited on a probe another request started.",
                    registry=REGISTRY)

SyncProbe = Callable[[Path], dict[str, Any]]
AsyncProbe = Callable[[Path], Awaitable[dict[str, Any]]]
Probe = SyncProbe | AsyncProbe

PENDING = b'"status":"pending"'
"""How a document whose browser proxy is still being made reads (compact JSON, see
core.media.ingest.preview): it will change while its file does not."""

Identity = tuple[int, int, int, int, int]
"""A file's inode, device, size, mtime and ctime (ns): what changes when it is replaced."""

_encode = msgspec.json.Encoder().encode


class _Copy(NamedTuple):
    """This process's copy of one document."""

    identity: Identity | None
    """Of the file, taken before the document was looked up or probed (None: no such file)."""
    seen: float
    """When Redis last confirmed it or it was probed here (on the cache's clock)."""
    fresh_until: float
    """Until when it is served without asking Redis (never: its file was absent, or it is pending)."""
    document: bytes


class MetadataCache:
    """Read-through cache of ``probe(path)`` results, keyed by file name."""

    def __init__(
        self,
        kv: RedisConnection,
        media_dir: Path,
        probe: Probe,
        *,
        ttl: float = 3600.0,
        window: int = 1000,
        local_size: int = 4096,
        recheck: float = 1.0,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kv = kv
        self._media_dir = media_dir
        self._media_prefix = f"{media_dir}{os.sep}"
        self._probe = probe
        # A callable object with ``async def __call__`` counts as async too.
        self._probe_is_async = (inspect.iscoroutinefunction(probe)
                                or inspect.iscoroutinefunction(type(probe).__call__))
        self._ttl = ttl
        self._ttl_ms = max(1, round(ttl * 1000))
        self._recheck = min(recheck, ttl)  # a copy never outlives Redis' own
        self._clock = clock
        # Least recently kept first.
        self._local: collections.OrderedDict[str, _Copy] = collections.OrderedDict()
        self._local_size = local_size
        self._executor = executor
        self._flights: dict[str, asyncio.Task[tuple[bytes, bool]]] = {}
        # The lookups of one loop turn go to Redis as one MGET (core/batch.py).
        self._lookup: TurnBatcher[str, bytes | None] = TurnBatcher(self._mget)
        self._invalidations = 0
        self._recent: collections.deque[bool] = collections.deque(maxlen=window)

    def key(self, filename: str) -> str:
        return self._kv.key(f"metadata:{filename}")

    async def get_json(self, filename: str, found: os.stat_result | None = None) -> bytes:
        """The metadata of ``media_dir/filename`` as a JSON document.

        ``filename`` must already be validated (a bare name inside the media directory);
        ``found`` is its ``lstat`` when the caller took one just now (core/storage.py
        ``media_stat``), which saves taking it again. Whatever the probe raises (file missing,
        not a video) reaches every waiting caller and nothing is cached.
        """
        identity = self._identity(filename) if found is None else _identity_of(found)
        copy = self._local.get(filename)
        if copy is not None and copy.identity == identity and self._clock() < copy.fresh_until:
            self._count(HITS)
            return copy.document
        flight = self._flights.get(filename)
        led = flight is None
        if flight is None:
            # A task of its own, so a leader whose client went away does not cancel the
            # probe the others are waiting on.
            flight = asyncio.get_running_loop().create_task(self._fetch(filename, identity))
            self._flights[filename] = flight
            flight.add_done_callback(functools.partial(self._land, filename))
        document, from_cache = await asyncio.shield(flight)
        self._count(HITS if from_cache else MISSES if led else COALESCED)
        return document

    async def get(self, filename: str) -> dict[str, Any]:
        """:meth:`get_json`, decoded."""
        return msgspec.json.decode(await self.get_json(filename), type=dict[str, Any])

    async def put(self, filename: str, metadata: dict[str, Any]) -> None:
        """Store metadata probed elsewhere (an upload that just probed its file, and named it
        since: the identity taken now is that of the file probed)."""
        await self._store(filename, self._identity(filename), _encode(metadata))

    async def invalidate(self, filename: str) -> None:
        """Forget ``filename``'s metadata (file deleted or replaced), here and in Redis."""
        self._invalidations += 1
        self._flights.pop(filename, None)
        self._local.pop(filename, None)
        # Redis down: deleted before the breaker lets traffic through again (it may come
        # back from a snapshot holding the old document).
        await self._kv.forget(self.key(filename))

    def hit_ratio(self) -> float | None:
        """Share of the last ``window`` requests answered from the cache; None before any."""
        if not self._recent:
            return None
        return sum(self._recent) / len(self._recent)

    def _land(self, filename: str, flight: asyncio.Task[tuple[bytes, bool]]) -> None:
        """Done-callback of a flight: forget it, and mark its error seen (waiters may be gone)."""
        if self._flights.get(filename) is flight:
            del self._flights[filename]
        if not flight.cancelled():
            flight.exception()

    def _identity(self, filename: str) -> Identity | None:
        """The identity of ``media_dir/filename`` (not following a symlink); None if absent."""
        try:
            return _identity_of(os.lstat(self._media_prefix + filename))
        except (OSError, ValueError):  # ValueError: a NUL byte (callers validate names first)
            return None

    async def _fetch(self, filename: str, identity: Identity | None) -> tuple[bytes, bool]:
        """(document, came from the cache) for one flight; ``identity`` is its file's, taken before."""
        invalidations = self._invalidations
        try:
            cached = await self._lookup(filename)
        except KvUnavailable:
            cached = self._recall(filename, identity)
        else:
            if cached is not None and invalidations == self._invalidations:
                self._keep(filename, identity, cached)
        if cached is not None:
            return cached, True
        invalidations = self._invalidations
        metadata = await self._run_probe(self._media_dir / filename)
        document = _encode(metadata)
        if invalidations == self._invalidations:
            await self._store(filename, identity, document)
        return document, False

    async def _mget(self, names: list[str]) -> list[bytes | None]:
        """Redis' copies of the documents ``names``: the lookups of one loop turn, one ``MGET``."""
        keys = [self.key(name) for name in names]
        # Bytes: the client does not decode replies (core/kv/client.py).
        return cast("list[bytes | None]", await self._kv.run(lambda client: client.mget(keys)))

    async def _run_probe(self, path: Path) -> dict[str, Any]:
        # Which of the two kinds of Probe it is was told apart in __init__.
        if self._probe_is_async:
            return await cast("AsyncProbe", self._probe)(path)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, cast("SyncProbe", self._probe), path)

    async def _store(self, filename: str, identity: Identity | None, document: bytes) -> None:
        self._keep(filename, identity, document)
        try:
            await self._kv.run(
                lambda client: client.set(self.key(filename), document, px=self._ttl_ms))
        except KvUnavailable:
            pass

    def _keep(self, filename: str, identity: Identity | None, document: bytes) -> None:
        """Hold the latest document in the local copy, evicting the least recently kept."""
        now = self._clock()
        if identity is None or PENDING in document:
            fresh_until = -math.inf
        else:
            # The end of the current ``recheck`` period: the copies of all the files in use
            # fall due together, and their lookups share a few MGETs.
            fresh_until = (now // self._recheck + 1) * self._recheck
        self._local[filename] = _Copy(identity, now, fresh_until, document)
        self._local.move_to_end(filename)
        if len(self._local) > self._local_size:
            self._local.popitem(last=False)

    def _recall(self, filename: str, identity: Identity | None) -> bytes | None:
        """The local copy while Redis is down: any document of this file younger than the TTL."""
        copy = self._local.get(filename)
        if copy is None or copy.identity != identity:
            return None
        if self._clock() - copy.seen >= self._ttl:
            del self._local[filename]
            return None
        return copy.document

    def _count(self, outcome: Counter) -> None:
        outcome.inc()
        self._recent.append(outcome is HITS)


def _identity_of(found: os.stat_result) -> Identity:
    return found.st_ino, found.st_dev, found.st_size, found.st_mtime_ns, found.st_ctime_ns
