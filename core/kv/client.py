"""How this process talks to Redis: one connection policy, one key namespace.

Every Redis client nve opens is built by :func:`create_client`, whoever uses it: the
:class:`~core.kv.connection.RedisConnection` behind sessions, rate limits and the metadata
cache, and the WebSocket hub's bus (server/ws/bus.py), whose pub/sub subscription takes a
connection of its own from its client's pool, made with the same settings.

The policy (:class:`RedisPolicy`, docs/CONTRACT.md section 1: fail fast, at most 3 retries,
reconnect backoff ``min(n * 50 ms, 2 s)``):

- Timeouts: 250 ms to answer, 500 ms to connect. A request never waits long on a dead or
  hung Redis; connecting gets the larger share because a burst of fresh connections on a
  busy machine takes a while to get through. A managed Redis's maintenance notifications
  may still make redis-py reconnect early, but not relax these timeouts (to 10 s by
  default): during a failover the callers' fallbacks serve, as in any other outage.
- Retries: redis-py's own retry loop is off (``redis.asyncio.retry.Retry`` with 0
  retries; the synchronous ``redis.retry.Retry`` would make redis-py warn on every start).
  Its loop sleeps inside the caller and, for pub/sub, reconnects and resubscribes behind
  the caller's back. Instead each caller sees every failure and decides: the
  request path retries a dropped connection at once, at most ``max_retries`` times, and
  counts failures in a circuit breaker (core/kv/connection.py); the bus's background loops
  wait :func:`~core.kv.breaker.reconnect_delay` between attempts and, knowing when they
  were cut off, catch up on what pub/sub did not replay.
- Health checks: TCP keepalive, probing a connection idle for 30 s every 5 s, 3 times, so
  a connection to a host that vanished (or that a proxy or NAT forgot) fails within 45 s
  even while nothing is sent on it: pooled connections between requests, and above all
  the pub/sub connection, which only ever reads and would otherwise wait in silence for
  messages that will never come. redis-py's PING health check stays off: with its retries
  off a failed PING fails the command exactly as the command itself would, so on the
  request path it only adds a round trip; on the pub/sub connection an unanswered PING
  is data in flight, which suspends keepalive and leaves finding the dead peer to TCP's
  retransmission timeout (many minutes).
- Client name ``nve:<role>`` (``CLIENT LIST`` tells the request pool, ``nve:kv``, from the
  bus, ``nve:bus``); replies stay bytes (``decode_responses=False``: cached documents and
  bus messages are passed on as they are), parsed by hiredis.

The namespace: ``NVE_REDIS_PREFIX`` (``Settings.redis_prefix``) is put verbatim in front of
every key and channel name, so deployments sharing one Redis see nothing of each other.
It is applied where names are built: :meth:`RedisConnection.key
<core.kv.connection.RedisConnection.key>` for the stores on the request path, and the
channel name of the WebSocket settings (server/ws/settings.py), from which the bus and its
latest-state keys derive theirs. Empty (the default), names are exactly the contract's.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis._parsers import _AsyncHiredisParser
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig


@dataclass(frozen=True, slots=True)
class RedisPolicy:
    """Timeouts, retries and keepalive of every Redis client (see the module docstring)."""

    socket_timeout: float = 0.25
    """Seconds a command (or a read without its own timeout) may wait for its reply."""
    connect_timeout: float = 0.5
    max_retries: int = 3
    """Retries of a command that lost its connection, by the caller (redis-py retries none)."""
    keepalive_idle: int = 30
    """Seconds a connection may be silent before TCP probes whether its peer is still there."""
    keepalive_interval: int = 5
    keepalive_count: int = 3
    """Unanswered probes after which the connection is dropped (and the reader gets an error)."""

    def keepalive_options(self) -> dict[int, int]:
        """The ``IPPROTO_TCP`` socket options for the above, as far as the platform has them."""
        wanted = (("TCP_KEEPIDLE", self.keepalive_idle), ("TCP_KEEPALIVE", self.keepalive_idle),
                  ("TCP_KEEPINTVL", self.keepalive_interval), ("TCP_KEEPCNT", self.keepalive_count))
        # TCP_KEEPIDLE is Linux's name, TCP_KEEPALIVE macOS's for the same option.
        return {getattr(socket, name): value for name, value in wanted if hasattr(socket, name)}


POLICY = RedisPolicy()


def create_client(url: str, role: str, policy: RedisPolicy = POLICY) -> aioredis.Redis:
    """A lazy client for ``url`` (no socket is opened until the first command) under ``policy``.

    ``role`` names the client's connections on the server (``CLIENT SETNAME nve:<role>``).
    """
    return aioredis.Redis.from_url(
        url,
        socket_timeout=policy.socket_timeout,
        socket_connect_timeout=policy.connect_timeout,
        socket_keepalive=True,
        socket_keepalive_options=policy.keepalive_options(),
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        maint_notifications_config=MaintNotificationsConfig(relaxed_timeout=-1),
        client_name=f"nve:{role}",
        decode_responses=False,
        parser_class=_AsyncHiredisParser,
    )
