"""Media metadata cached in Redis at ``metadata:{filename}`` (docs/CONTRACT.md section 2, Media).

The key is in the deployment's namespace (``NVE_REDIS_PREFIX``, see core/kv/client.py).

A hit is a Redis lookup whose JSON bytes go to the client as they are. A miss probes the
file (PyAV, off the event loop when the probe is synchronous) and stores the result with a
TTL (3600 s by default). Concurrent requests for one file share a single flight: 100
simultaneous misses cost one lookup and one probe. The lookups of all the flights that
start in one turn of the event loop go to Redis as one ``MGET`` (auto-pipelining, as
ioredis does it): under load one round trip serves many requests.

While Redis is unavailable, reads are answered from a bounded copy in this process of the
documents it saw most recently (``local_size`` entries, same TTL), so an outage does not
turn every request into a probe; what is not there is probed (still one flight per file).
The copy is used only then: with Redis up, Redis is the one cache all nodes share.

:meth:`MetadataCache.invalidate` is called when a file is deleted or replaced. A probe that
was in flight when an invalidation happened does not store its (possibly stale) result.

Counters: ``nve_metadata_cache_hits_total`` (served from the cache, including requests that
joined such a flight), ``nve_metadata_cache_misses_total`` (requests that probed) and
``nve_metadata_cache_coalesced_total`` (requests that waited on another request's probe).
:meth:`MetadataCache.hit_ratio` is the hit share of the most recent ``window`` requests.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, cast

import msgspec
from prometheus_client import Counter

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

_encode = msgspec.json.Encoder().encode


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
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kv = kv
        self._media_dir = media_dir
        self._probe = probe
        # A callable object with ``async def __call__`` counts as async too.
        self._probe_is_async = (inspect.iscoroutinefunction(probe)
                                or inspect.iscoroutinefunction(type(probe).__call__))
        self._ttl = ttl
        self._ttl_ms = max(1, round(ttl * 1000))
        self._clock = clock
        # filename -> (expiry on ``clock``, document), least recently stored first.
        self._local: collections.OrderedDict[str, tuple[float, bytes]] = collections.OrderedDict()
        self._local_size = local_size
        self._executor = executor
        self._flights: dict[str, asyncio.Task[tuple[bytes, bool]]] = {}
        # Lookups waiting for this loop turn's MGET, and the MGETs in flight (kept referenced).
        self._batch: dict[str, asyncio.Future[bytes | None]] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._invalidations = 0
        self._recent: collections.deque[bool] = collections.deque(maxlen=window)

    def key(self, filename: str) -> str:
        return self._kv.key(f"metadata:{filename}")

    async def get_json(self, filename: str) -> bytes:
        """The metadata of ``media_dir/filename`` as a JSON document.

        ``filename`` must already be validated (a bare name inside the media directory).
        Whatever the probe raises (file missing, not a video) reaches every waiting caller
        and nothing is cached.
        """
        flight = self._flights.get(filename)
        led = flight is None
        if flight is None:
            # A task of its own, so a leader whose client went away does not cancel the
            # probe the others are waiting on.
            flight = asyncio.get_running_loop().create_task(self._fetch(filename))
            self._flights[filename] = flight
            flight.add_done_callback(functools.partial(self._land, filename))
        document, from_cache = await asyncio.shield(flight)
        self._count(from_cache, MISSES if led else COALESCED)
        return document

    async def get(self, filename: str) -> dict[str, Any]:
        """:meth:`get_json`, decoded."""
        return msgspec.json.decode(await self.get_json(filename), type=dict[str, Any])

    async def put(self, filename: str, metadata: dict[str, Any]) -> None:
        """Store metadata probed elsewhere (an upload that just probed its file)."""
        await self._store(filename, _encode(metadata))

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

    async def _fetch(self, filename: str) -> tuple[bytes, bool]:
        """(document, came from the cache) for one flight."""
        try:
            cached = await self._lookup(filename)
        except KvUnavailable:
            cached = self._recall(filename)
        else:
            if cached is not None:
                self._keep(filename, cached)
        if cached is not None:
            return cached, True
        invalidations = self._invalidations
        metadata = await self._run_probe(self._media_dir / filename)
        document = _encode(metadata)
        if invalidations == self._invalidations:
            await self._store(filename, document)
        return document, False

    def _lookup(self, filename: str) -> asyncio.Future[bytes | None]:
        """Redis' copy of the document, fetched with the other lookups of this loop turn."""
        loop = asyncio.get_running_loop()
        if self._batch is None:
            self._batch = {}
            loop.call_soon(self._send_batch)
        waiter = self._batch.get(filename)
        if waiter is None:
            waiter = self._batch[filename] = loop.create_future()
        return waiter

    def _send_batch(self) -> None:
        batch, self._batch = self._batch or {}, None
        task = asyncio.get_running_loop().create_task(self._mget(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _mget(self, batch: dict[str, asyncio.Future[bytes | None]]) -> None:
        names = list(batch)
        keys = [self.key(name) for name in names]
        try:
            # Bytes: the client does not decode replies (core/kv/client.py).
            values = cast("list[bytes | None]", await self._kv.run(lambda client: client.mget(keys)))
        except asyncio.CancelledError:
            for waiter in batch.values():
                waiter.cancel()
            raise
        except Exception as error:  # KvUnavailable, or a bug: either way each waiter's to handle
            for waiter in batch.values():
                if not waiter.done():
                    waiter.set_exception(error)
            return
        for name, value in zip(names, values):
            if not batch[name].done():
                batch[name].set_result(value)

    async def _run_probe(self, path: Path) -> dict[str, Any]:
        # Which of the two kinds of Probe it is was told apart in __init__.
        if self._probe_is_async:
            return await cast("AsyncProbe", self._probe)(path)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, cast("SyncProbe", self._probe), path)

    async def _store(self, filename: str, document: bytes) -> None:
        self._keep(filename, document)
        try:
            await self._kv.run(
                lambda client: client.set(self.key(filename), document, px=self._ttl_ms))
        except KvUnavailable:
            pass

    def _keep(self, filename: str, document: bytes) -> None:
        """Hold the latest document in the local copy, evicting the least recently kept."""
        self._local[filename] = (self._clock() + self._ttl, document)
        self._local.move_to_end(filename)
        if len(self._local) > self._local_size:
            self._local.popitem(last=False)

    def _recall(self, filename: str) -> bytes | None:
        entry = self._local.get(filename)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._local[filename]
            return None
        return entry[1]

    def _count(self, from_cache: bool, otherwise: Counter) -> None:
        (HITS if from_cache else otherwise).inc()
        self._recent.append(from_cache)
