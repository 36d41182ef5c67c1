"""``GET /metrics``: the process registry (``core.metrics.REGISTRY``) in Prometheus text format.

Most metrics are kept current by the modules that declare them. The ones that describe a
state rather than count events (the Redis breaker, the cache hit ratio, the database
pool) are read from the app's services at scrape time, so they are never stale.

:func:`record_request` is for dispatch: requests by method, route pattern and status, and
their latency, labelled by pattern (never by raw path) to keep the label set bounded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Enum, Gauge, Histogram, generate_latest

from core.kv.breaker import BreakerState
from core.metrics import REGISTRY
from server.caching import LIVE
from server.http.request import Request
from server.http.response import Response

if TYPE_CHECKING:
    from server.app import App

REQUESTS = Counter("nve_http_requests", "HTTP requests by method, route pattern and status.",
                   ["method", "route", "status"], registry=REGISTRY)
REQUEST_SECONDS = Histogram(
    "nve_http_request_seconds", "Time from dispatch to the handler's response, by route.",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
    registry=REGISTRY,
)
BREAKER_STATE = Enum("nve_redis_breaker_state", "The Redis circuit breaker's state.",
                     states=[state.value for state in BreakerState], registry=REGISTRY)
BREAKER_FAILED_ATTEMPTS = Gauge(
    "nve_redis_breaker_failed_attempts",
    "Failed reconnect attempts in a row since the Redis breaker opened (0 while closed).",
    registry=REGISTRY,
)
CACHE_HIT_RATIO = Gauge("nve_metadata_cache_hit_ratio",
                        "Share of recent metadata requests answered from Redis.", registry=REGISTRY)
DB_POOL = Gauge("nve_db_pool_connections", "PostgreSQL pool connections: open, idle, max.",
                ["state"], registry=REGISTRY)


def register_metrics_routes(app: App) -> None:
    app.router.add("GET", "/metrics", metrics, cache=LIVE)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


_request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
"""The labelled children of REQUESTS and REQUEST_SECONDS by (method, route, status): looking
them up through ``labels()`` (label tuple, lock, dict) cost more than counting."""


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one finished request; ``route`` is the matched pattern (``"unmatched"`` if none).

    Methods outside the usual few are counted as ``OTHER``, so a client inventing methods
    cannot grow the label set (nor this cache of children, bounded by the routes and statuses).
    """
    method = method if method in _METHODS else "OTHER"
    children = _request_children.get((method, route, status))
    if children is None:
        children = (REQUESTS.labels(method, route, str(status)), REQUEST_SECONDS.labels(method, route))
        _request_children[(method, route, status)] = children
    children[0].inc()
    children[1].observe(seconds)


async def metrics(request: Request) -> Response:
    app = request.app
    breaker = app.kv.connection.breaker
    BREAKER_STATE.state(breaker.state.value)
    BREAKER_FAILED_ATTEMPTS.set(breaker.failed_attempts)
    ratio = app.kv.metadata.hit_ratio()
    CACHE_HIT_RATIO.set(ratio if ratio is not None else float("nan"))
    stats = app.db.stats()
    DB_POOL.labels("open").set(stats["size"])
    DB_POOL.labels("idle").set(stats["idle"])
    DB_POOL.labels("max").set(stats["max"])
    return Response(200, [("content-type", CONTENT_TYPE_LATEST)], generate_latest(REGISTRY))
