"""``GET /metrics``: the process registry (``core.registry.REGISTRY``) in Prometheus text format.

Most metrics are kept current by the modules that declare them (requests by route:
server/policy/request_metrics.py). The ones that describe a state rather than count
events (the Redis breaker, the cache hit ratio, the database pool) are read from the
app's services at scrape time, so they are never stale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, Enum, Gauge, generate_latest

from core.kv.breaker import BreakerState
from core.registry import REGISTRY
from server.http.request import Request
from server.http.response import Response

if TYPE_CHECKING:
    pass

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
