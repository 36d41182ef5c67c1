"""HTTP entry points of the WebSocket hub: the ``/ws`` upgrade, tokens, the benchmark hook.

The hub itself (server/ws/hub.py) is one of the app's services (server/app.py); these
handlers reach it as ``request.app.hub``. ``POST /api/_bench/broadcast`` is routed only
when ``NVE_BENCH=1`` (server/routes.py).

The handshake settles whose operations the client receives (server/policy/access.py: an
API key, the local user, or the session cookie). A client with none of them, typically a
page of another origin, gets a token from ``POST /api/ws/token`` through whatever
authenticates it over HTTP, and sends it as ``{"type": "auth", "data": {"token": ...}}``.
"""

from __future__ import annotations

import asyncio
import functools
import time

from server.http.request import Request
from server.http.response import HTTPError, Response, Upgrade, json_response
from server.policy.access import owner_of, websocket_owner
from server.ws.handshake import HandshakeRejected, accept_handshake
from server.ws.hub import Hub

BENCH_MAX_COUNT = 100_000


async def websocket(request: Request) -> Response | Upgrade:
    """``GET /ws``: 101 into the hub, or 400/403/405/426/503 with a JSON error."""
    hub = request.app.hub
    settings = hub.settings
    try:
        headers = accept_handshake(request.method, request.headers, settings.allowed_origins)
    except HandshakeRejected as rejected:
        raise HTTPError(rejected.status, rejected.message, headers=rejected.headers) from None
    if len(hub.clients) >= settings.max_clients:
        raise HTTPError(503, f"This server holds its maximum of {settings.max_clients} WebSocket clients",
                        headers=[("retry-after", "5")])
    owner = await websocket_owner(request)
    return Upgrade(headers=headers, on_switch=functools.partial(hub.attach, owner=owner))


async def ws_token(request: Request) -> Response:
    """``POST /api/ws/token``: 201 ``{token, expiresIn}``, a single-use token for an ``auth`` message."""
    tokens = request.app.access.tokens
    token = await tokens.issue(await owner_of(request))
    return json_response({"token": token, "expiresIn": tokens.ttl}, 201, [("cache-control", "no-store")])


async def bench_broadcast(request: Request) -> Response:
    """``POST /api/_bench/broadcast {count, operationId}``: 202, then ``count`` progress messages.

    Each carries ``sentAt`` (epoch ms, float) stamped as it is published, and goes the real
    way (bus, monotonic filter, fan-out), so use a fresh operationId per run. The
    publisher yields to the event loop between messages, as a job's progress would.
    """
    hub = request.app.hub
    body = await request.json()
    count = body.get("count") if isinstance(body, dict) else None
    operation_id = body.get("operationId") if isinstance(body, dict) else None
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= BENCH_MAX_COUNT:
        raise HTTPError(400, f"Field 'count' must be an integer from 1 to {BENCH_MAX_COUNT}")
    if not isinstance(operation_id, str) or not operation_id:
        raise HTTPError(400, "Field 'operationId' must be a non-empty string")
    hub.spawn(_broadcast(hub, operation_id, count, await owner_of(request)))
    return json_response({"operationId": operation_id, "count": count}, 202)


async def _broadcast(hub: Hub, operation_id: str, count: int, owner: str) -> None:
    for index in range(1, count + 1):
        await hub.publish("progress", {
            "operationId": operation_id, "operation": "process", "progress": index * 100 / count,
            "message": f"bench {index}/{count}", "sentAt": time.time() * 1000,
        }, owner)
        await asyncio.sleep(0)
