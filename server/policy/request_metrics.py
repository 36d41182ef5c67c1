"""Request metrics: dispatch counts every finished request here, whatever answered it.

Requests by method, route pattern and status, and their latency, labelled by pattern
(never by raw path) to keep the label set bounded. Exposed with the rest of the process
registry at ``GET /metrics`` (server/handlers/metrics.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from core.registry import REGISTRY

REQUESTS = Counter("nve_http_requests", "HTTP requests by method, route pattern and status.",
                   ["method", "route", "status"], registry=REGISTRY)
REQUEST_SECONDS = Histogram(
    "nve_http_request_seconds", "Time from dispatch to the handler's response, by route.",
    ["method", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
    registry=REGISTRY,
)

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
