"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from server.http.request import Request
from server.http.response import Response, json_response


async def healthz(request: Request) -> Response:
    """Alive: the event loop answers. Touches no backing service."""
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when PostgreSQL answers; every other service reports its state without gating."""
    app = request.app
    database = await app.db.ping()
    report: dict[str, object] = {"database": "up" if database else "down"}
    for name, check in app.readiness.items():
        report[name] = await check()
    if database:
        return json_response({"status": "ready", **report})
    return json_response({"status": "unavailable", "error": "PostgreSQL is unreachable", **report}, 503)
