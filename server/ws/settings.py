"""Tunables of the WebSocket hub, with the defaults docs/CONTRACT.md section 3 implies.

One frozen value object is shared by the handshake, the per-connection protocol and the
hub, so a test can shorten the ping interval or shrink a budget in one place.

:meth:`WsSettings.from_settings` takes what the server's settings already hold in final
form: the allowed origins normalised (core/config.py), and the Redis namespace, which it
puts in front of :data:`CHANNEL` once; the bus's channel and the latest-state keys derived
from it (latest.py) are then all in the deployment's namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config import Settings

CHANNEL = "nve:ws"
"""The channel name in Redis, before the deployment's ``NVE_REDIS_PREFIX``."""


@dataclass(frozen=True, slots=True)
class WsSettings:
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    """Origins allowed besides the server's own, normalised (``scheme://host[:port]`` as
    core.config.normalize_origin writes them); ``*`` allows any."""
    max_clients: int = 20_000
    """WebSocket clients one process holds; more are answered 503 (the HTTP cap stops counting
    a connection once it is upgraded)."""
    ping_interval: float = 30.0
    """Seconds between server pings; a client silent for one whole interval after a ping is dropped."""
    max_message_bytes: int = 1 << 20
    """Largest inbound message (all its fragments together); larger closes with 1009."""
    max_fragments: int = 128
    """Most frames one inbound message may be split into; more closes with 1009."""
    client_budget_bytes: int = 256 << 10
    """Bytes waiting in a client's socket buffer past which progress is coalesced per operation."""
    client_hard_cap_bytes: int = 4 << 20
    """Bytes held for one client (socket buffer plus coalesced backlog) past which it is closed 1013."""
    close_linger: float = 2.0
    """Seconds a closing socket may take to flush before it is aborted."""
    latest_ttl: int = 3600
    """Seconds Redis keeps an operation's latest state."""
    latest_max_entries: int = 100_000
    """Operations whose latest state one process keeps in memory (oldest forgotten first)."""
    channel: str = CHANNEL
    """Redis pub/sub channel (and key prefix) the nodes share, with the deployment's prefix."""
    bench: bool = False
    """Serve ``POST /api/_bench/broadcast`` (only when started with ``NVE_BENCH=1``)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> WsSettings:
        """The WebSocket part of the server's settings (origins, connection cap, ping interval,
        Redis namespace, bench flag)."""
        return cls(
            allowed_origins=frozenset(settings.allowed_origins),
            channel=settings.redis_prefix + CHANNEL,
            max_clients=settings.max_connections,
            ping_interval=settings.ws_ping_interval,
            bench=settings.bench,
        )
