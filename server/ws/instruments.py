"""Prometheus metrics of the WebSocket hub, declared against the process registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from core.registry import REGISTRY

CLIENTS = Gauge("nve_ws_clients", "WebSocket clients connected to this process", registry=REGISTRY)
SENT = Counter("nve_ws_messages_sent_total",
               "Job messages handed to client connections (written, or queued behind a full buffer)",
               registry=REGISTRY)
COALESCED = Counter("nve_ws_messages_coalesced_total",
                    "Progress messages a slow client never got because a newer value replaced them",
                    registry=REGISTRY)
STALE = Counter("nve_ws_messages_stale_total",
                "Job messages refused: progress lower than known, or anything after complete/error",
                registry=REGISTRY)
EVICTED = Counter("nve_ws_clients_evicted_total",
                  "Clients closed by the server: 'slow' (over the hard cap, 1013), 'ping_timeout' (1011)",
                  ["reason"], registry=REGISTRY)
CLIENT_ERRORS = Counter("nve_ws_client_errors_total",
                        "Client messages answered with an error (not JSON, unknown type, bad fields)",
                        registry=REGISTRY)
