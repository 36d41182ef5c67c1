"""HTTP entry points of the WebSocket hub: the ``/ws`` upgrade, tokens, the benchmark hook.

:func:`install` is all the app needs: it builds the hub from the server's settings (on
the Redis bus, as Redis is always configured; it may be down), mounts ``GET /ws``,
``POST /api/ws/token`` (and ``POST /api/_bench/broadcast`` only when ``NVE_BENCH=1``),
and hooks the hub into start-up, the 1001 close at shutdown, and ``/readyz``.

The handshake settles whose operations the client receives (server/access.py: an API
key, the local user, or the session cookie). A client with none of them, typically a
page of another origin, gets a token from ``POST /api/ws/token`` through whatever
authenticates it over HTTP, and sends it as ``{"type": "auth", "data": {"token": ...}}``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING

from server.access import owner_of, websocket_owner
from server.http.request import Request
from server.http.response import HTTPError, Response, Upgrade, json_response
from server.routing import Handler
from server.ws.handshake import HandshakeRejected, accept_handshake
from server.ws.hub import Hub, create_hub
from server.ws.settings import WsSettings

if TYPE_CHECKING:
    from server.app import App

BENCH_MAX_COUNT = 100_000


def install(app: App) -> Hub:
    """Create the app's hub, mount its routes and lifecycle hooks; returns it (``app.hub``)."""
    settings = WsSettings.from_settings(app.settings)
    hub = create_hub(settings, app.settings.redis_url)
    hub.redeem = app.access.tokens.redeem
    app.router.add("GET", "/ws", websocket_endpoint(hub, settings))
    app.router.add("POST", "/api/ws/token", ws_token, rate_limited=True)
    if settings.bench:
        app.router.add("POST", "/api/_bench/broadcast", bench_broadcast_endpoint(hub))
    app.on_startup.append(hub.start)
    app.on_close_connections.append(hub.close)

    async def readiness() -> dict[str, object]:
        return {"clients": len(hub.clients), "bus": hub.bus.state}

    app.readiness["websocket"] = readiness
    return hub


def websocket_endpoint(hub: Hub, settings: WsSettings) -> Handler:
    """The ``GET /ws`` handler: 101 into the hub, or 400/403/405/426/503 with a JSON error."""

    async def websocket(request: Request) -> Response | Upgrade:
        try:
            headers = accept_handshake(request.method, request.headers, settings.allowed_origins)
        except HandshakeRejected as rejected:
            raise HTTPError(rejected.status, rejected.message, headers=rejected.headers) from None
        if len(hub.clients) >= settings.max_clients:
            raise HTTPError(503, f"This server holds its maximum of {settings.max_clients} WebSocket clients",
                            headers=[("retry-after", "5")])
        owner = await websocket_owner(request)
        return Upgrade(headers=headers, on_switch=functools.partial(hub.attach, owner=owner))

    return websocket


async def ws_token(request: Request) -> Response:
    """``POST /api/ws/token``: 201 ``{token, expiresIn}``, a single-use token for an ``auth`` message."""
    tokens = request.app.access.tokens
    token = await tokens.issue(await owner_of(request))
    return json_response({"token": token, "expiresIn": tokens.ttl}, 201, [("cache-control", "no-store")])


def bench_broadcast_endpoint(hub: Hub) -> Handler:
    """``POST /api/_bench/broadcast {count, operationId}``: 202, then ``count`` progress messages.

    Each carries ``sentAt`` (epoch ms, float) stamped as it is published, and goes the real
    way (bus, monotonic filter, fan-out), so use a fresh operationId per run. The
    publisher yields to the event loop between messages, as a job's progress would.
    """

    async def bench_broadcast(request: Request) -> Response:
        body = await request.json()
        count = body.get("count") if isinstance(body, dict) else None
        operation_id = body.get("operationId") if isinstance(body, dict) else None
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= BENCH_MAX_COUNT:
            raise HTTPError(400, f"Field 'count' must be an integer from 1 to {BENCH_MAX_COUNT}")
        if not isinstance(operation_id, str) or not operation_id:
            raise HTTPError(400, "Field 'operationId' must be a non-empty string")
        hub.spawn(_broadcast(hub, operation_id, count, await owner_of(request)))
        return json_response({"operationId": operation_id, "count": count}, 202)

    return bench_broadcast


async def _broadcast(hub: Hub, operation_id: str, count: int, owner: str) -> None:
    for index in range(1, count + 1):
        await hub.publish("progress", {
            "operationId": operation_id, "operation": "process", "progress": index * 100 / count,
            "message": f"bench {index}/{count}", "sentAt": time.time() * 1000,
        }, owner)
        await asyncio.sleep(0)
