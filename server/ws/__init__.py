"""Real-time job progress over WebSocket at ``/ws`` (docs/CONTRACT.md section 3).

Public API
----------
For the job system (any node)::

    await app.hub.publish("progress", {"operationId": op, "operation": "trim", "progress": 42.0,
                                       "message": "Encoding"})
    await app.hub.publish("complete", {"operationId": op, "result": {"filename": ..., "url": ...}})
    await app.hub.publish("error", {"operationId": op, "error": "Encoder failed"})

``publish`` validates (``BadMessage``, a ValueError, on a wrong type or missing field),
serializes once, delivers to this node's clients at once and, over Redis, to every other
node's. It never waits on Redis. Progress lower than already published for the
operation, and anything after its complete/error, is dropped (monotonic, final once).

To answer for operations nobody remembers (memory and Redis forgot them), build the hub
with ``create_hub(settings, redis_url, redeem=..., fallback=...)`` where ``fallback`` is
``async (operationId) -> Envelope | None`` (the job table) and ``redeem`` is
``async (token) -> owner | None`` (the ``auth`` message's single-use tokens).

For the app: ``server.handlers.websocket.install(app)`` builds the hub, mounts ``GET /ws`` (and
``POST /api/_bench/broadcast`` with ``NVE_BENCH=1``), and hooks start-up, shutdown (close
1001) and ``/readyz``. For clients: :class:`server.ws.client.WsClient` (Python) and
``/static/js/nve-ws.js`` (browsers).

Close codes the server sends
----------------------------
1001 server shutting down; 1002 protocol violation; 1007 text not UTF-8; 1009 message
over 1 MiB or over 128 fragments; 1011 no answer to a ping within one interval;
1013 slow consumer (its socket buffer plus backlog passed the hard cap, 4 MiB): reconnect
and resubscribe, the latest state of each operation comes at once.

Modules
-------
handshake (upgrade validation, Origin check), connection (sans-I/O frames and limits),
protocol (one client's asyncio protocol, its OPEN/CLOSING/CLOSED state, budget,
liveness), hub (registry, subscriptions, routing, write scheduling, heartbeat),
broadcast (the clients that follow every operation: one log, one write per client per
sweep), backlog (coalescing queue), latest (latest state per operation), bus (in-process
and Redis pub/sub delivery between nodes), messages (message shapes), job_events (the
job table's NOTIFYs routed to this node's clients), settings, instruments (Prometheus
metrics), client (Python client). The HTTP handlers (``/ws``, tokens) are in
server/handlers/websocket.py.
"""
