"""WebhookSettings: the knobs of webhook delivery, read from ``NVE_WEBHOOK_*`` variables.

The defaults are the issue's: retries with exponential backoff for 24 h, an endpoint
disabled after 100 failed attempts in a row, connect 2 s / total 10 s per attempt, at most
4 deliveries of one endpoint in flight across all nodes, private addresses refused.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


_ENV: dict[str, tuple[str, Callable[[str], float | int | bool]]] = {
    "retry_base": ("NVE_WEBHOOK_RETRY_BASE", float), "retry_max": ("NVE_WEBHOOK_RETRY_MAX", float),
    "retry_for": ("NVE_WEBHOOK_RETRY_FOR", float), "disable_after": ("NVE_WEBHOOK_DISABLE_AFTER", int),
    "allow_private": ("NVE_WEBHOOK_ALLOW_PRIVATE", _flag), "poll": ("NVE_WEBHOOK_POLL", float),
    "per_endpoint": ("NVE_WEBHOOK_PER_ENDPOINT", int), "lease": ("NVE_WEBHOOK_LEASE", float),
    "connect_timeout": ("NVE_WEBHOOK_CONNECT_TIMEOUT", float), "total_timeout": ("NVE_WEBHOOK_TIMEOUT", float),
    "retain": ("NVE_WEBHOOK_RETAIN", float)}
"""The settings an operator sets by environment variable (rotation_overlap is per request instead)."""


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookSettings:
    retry_base: float = 5.0
    """Seconds before the second attempt; each later one waits twice as long (capped, jittered)."""
    retry_max: float = 3600.0
    """Longest wait between two attempts."""
    retry_for: float = 86400.0
    """Seconds after the event during which failed attempts are retried; then the delivery is failed."""
    disable_after: int = 100
    """Consecutive failed attempts (any delivery) after which the endpoint is disabled."""
    allow_private: bool = False
    """Post to loopback, private, link-local... addresses (tests, a receiver on the same host): SSRF guard off."""
    per_endpoint: int = 4
    """Deliveries of one endpoint in flight at once, across all nodes: a slow receiver costs only itself."""
    lease: float = 30.0
    """How long a claim holds; longer than ``total_timeout``, so a live sender never loses one mid-post."""
    poll: float = 1.0
    """Senders look for due deliveries (retries, expired leases) this often without a NOTIFY."""
    connect_timeout: float = 2.0
    total_timeout: float = 10.0
    retain: float = 7 * 86400.0
    """Seconds an event is kept once every delivery of it has ended (delivered or failed): the
    deliveries page and redelivery reach back this far; then a sender deletes it."""
    rotation_overlap: float = 86400.0
    """Seconds the old secret still signs after a rotation, unless the request says otherwise."""

    def __post_init__(self) -> None:
        if self.lease <= self.total_timeout:
            raise ValueError("the webhook lease must outlast an attempt (lease > total_timeout)")

    def backoff(self, attempts: int, jitter: float) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones; ``jitter`` in [0.5, 1.0]
        spreads the retries of many deliveries that failed together."""
        return min(self.retry_base * 2.0 ** max(attempts - 1, 0), self.retry_max) * jitter

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if env is None else env
        values = {field: kind(env[name]) for field, (name, kind) in _ENV.items() if name in env}
        return cls(**values)  # type: ignore[arg-type]  # each value has its field's type (_ENV)
