"""Settings: every knob the server reads, from the environment and the command line.

One frozen :class:`Settings` object is built at start-up and handed to everything that
needs it, so no module reads ``os.environ`` on its own and tests can build any
configuration without touching the process environment.

Values that several consumers compare against are put in one canonical form here, when a
:class:`Settings` is made (from the environment, flags or a test's arguments alike), so no
consumer normalises them again, or forgets to: ``allowed_origins`` holds origins as
browsers serialise them (:func:`normalize_origin`), which both the HTTP same-origin check
and the WebSocket handshake compare the request's ``Origin`` with.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit

import platformdirs

from core.jobs.settings import JobSettings
from core.webhooks.settings import WebhookSettings

MiB = 1 << 20
ACCESS_MODES = ("auto", "open", "owners")
SPARE_CORES = max(1, (os.cpu_count() or 2) - 1)
"""Cores left for media work once the server's event loop has one."""
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}

log = logging.getLogger("nve.config")


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 3001
    data_dir: Path = Path(platformdirs.user_data_dir("native-video-editor"))
    media_dir: Path | None = None
    """Where uploads and outputs live; ``data_dir/media`` when not set."""
    database_url: str | None = None
    """``None`` means: start the embedded PostgreSQL in ``data_dir/pgdata``."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = ""
    """Put verbatim in front of every Redis key and pub/sub channel name (``NVE_REDIS_PREFIX``,
    e.g. ``staging:``), so deployments sharing one Redis keep apart; empty: the contract's names."""
    workers: int = SPARE_CORES
    allowed_origins: tuple[str, ...] = ()
    """Origins whose pages may write and open WebSockets besides the server's own (``*``: any);
    normalised (:func:`normalize_origin`) whichever way they are given."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names (``NVE_ALLOWED_HOSTS``; ``*`` for any) under which a loopback client is the
    local user in ``auto`` mode, besides ``localhost`` and loopback addresses (server/policy/access.py)."""
    trusted_proxies: tuple[str, ...] = ()
    bench: bool = False
    access: str = "auto"
    """Who may use the API without credentials (``NVE_ACCESS``, server/policy/access.py):
    ``open`` (everyone is the single local user), ``owners`` (an API key or a browser
    session, each seeing only its own), ``auto`` (open for clients on this machine when
    no proxy is in between, owners for everyone else)."""

    json_body_limit: int = 1 * MiB
    upload_limit: int = 4096 * MiB
    max_header_bytes: int = 16 * 1024
    header_timeout: float = 10.0
    keepalive_timeout: float = 5.0
    body_timeout: float = 30.0
    """How long a request body may send nothing before the connection is dropped."""
    max_connections: int = 20_000
    shutdown_timeout: float = 10.0
    ws_ping_interval: float = 30.0

    media_workers: int = 1
    """Warm processes for short media calls made by the server itself (probe, filmstrip, waveform)."""
    tus_ttl: float = 86_400.0
    """Seconds an unfinished tus upload is kept."""
    session_ttl: float = 3600.0
    metadata_ttl: float = 3600.0
    rate_limit_writes: int = 3000
    """Mutating requests per client IP (and per session) per window."""
    rate_limit_uploads: int = 300
    rate_limit_window: float = 60.0

    jobs: JobSettings = dataclasses.field(default_factory=JobSettings)
    """The job queue's and workers' knobs (``NVE_JOB_*``, see core/jobs/settings.py)."""
    webhooks: WebhookSettings = dataclasses.field(default_factory=WebhookSettings)
    """Webhook delivery: retries, disabling, SSRF (``NVE_WEBHOOK_*``, see core/webhooks/settings.py)."""

    db_pool_max: int = 20
    db_idle_timeout: float = 30.0
    db_connect_timeout: float = 2.0
    media_path: Path = dataclasses.field(init=False, repr=False, compare=False)
    """``media_dir``, or ``data_dir/media`` when it is not set (computed once: every media
    request asks for it)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_origins", _normalize_origins(self.allowed_origins))
        object.__setattr__(self, "media_path", self.media_dir if self.media_dir is not None
                           else self.data_dir / "media")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read the documented environment variables; ``overrides`` (CLI flags) win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if "NVE_HOST" in env:
            values["host"] = env["NVE_HOST"]
        if "PORT" in env:
            values["port"] = int(env["PORT"])
        if "NVE_DATA_DIR" in env:
            values["data_dir"] = Path(env["NVE_DATA_DIR"])
        if "MEDIA_DIR" in env:
            values["media_dir"] = Path(env["MEDIA_DIR"])
        database_url = database_url_from_env(env)
        if database_url is not None:
            values["database_url"] = database_url
        values["redis_url"] = redis_url_from_env(env)
        if "NVE_REDIS_PREFIX" in env:
            values["redis_prefix"] = env["NVE_REDIS_PREFIX"]
        if "NVE_WORKERS" in env:
            values["workers"] = int(env["NVE_WORKERS"])
        if "NVE_ALLOWED_ORIGINS" in env:
            values["allowed_origins"] = _split_list(env["NVE_ALLOWED_ORIGINS"])
        if "NVE_ALLOWED_HOSTS" in env:
            values["allowed_hosts"] = _split_list(env["NVE_ALLOWED_HOSTS"])
        if "NVE_TRUSTED_PROXIES" in env:
            values["trusted_proxies"] = _split_list(env["NVE_TRUSTED_PROXIES"])
        values["bench"] = env.get("NVE_BENCH") == "1"
        if "NVE_ACCESS" in env:
            values["access"] = env["NVE_ACCESS"]
        values["jobs"] = JobSettings.from_env(env)
        values["webhooks"] = WebhookSettings.from_env(env)
        for name, field, kind in _NUMERIC_ENV:
            if name in env:
                values[field] = kind(env[name])
        for key, value in overrides.items():
            if value is not None:
                values[key] = value
        if "NVE_CODEC_THREADS" not in env:
            # Every worker encodes at once: share the cores the server leaves them, rather
            # than give each worker all of them ((cores - 1) squared threads in all).
            # The ignores here and below: ``values`` holds each field's value under its name,
            # which a dict[str, object] cannot type field by field.
            workers = max(1, int(values.get("workers", SPARE_CORES)))  # type: ignore[call-overload]  # an int
            values["jobs"] = dataclasses.replace(  # type: ignore[type-var]  # a JobSettings
                values["jobs"], codec_threads=max(1, SPARE_CORES // workers))
        settings = cls(**values)  # type: ignore[arg-type]  # each value has its field's type
        if settings.access not in ACCESS_MODES:
            raise ValueError(f"NVE_ACCESS must be one of {', '.join(ACCESS_MODES)}, not {settings.access!r}")
        return settings


def database_url_from_env(env: Mapping[str, str]) -> str | None:
    """``DATABASE_URL``, else one built from the journal's ``POSTGRES_*`` names, else None."""
    if env.get("DATABASE_URL"):
        return env["DATABASE_URL"]
    names = ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD")
    if not any(env.get(name) for name in names):
        return None
    user = quote(env.get("POSTGRES_USER", "postgres"), safe="")
    password = quote(env.get("POSTGRES_PASSWORD", "postgres"), safe="")
    host = env.get("POSTGRES_HOST", "localhost")
    port = env.get("POSTGRES_PORT", "5432")
    database = quote(env.get("POSTGRES_DB", "video-editor"), safe="")
    return f"postgresql://{user}:{password}@{host}:{port}/{database}"


def redis_url_from_env(env: Mapping[str, str]) -> str:
    """``REDIS_URL``, else one built from ``REDIS_HOST/PORT/PASSWORD`` (localhost:6379)."""
    if env.get("REDIS_URL"):
        return env["REDIS_URL"]
    host = env.get("REDIS_HOST", "127.0.0.1")
    port = env.get("REDIS_PORT", "6379")
    password = env.get("REDIS_PASSWORD")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/0"


_NUMERIC_ENV: tuple[tuple[str, str, type], ...] = (
    ("NVE_MEDIA_WORKERS", "media_workers", int),
    ("NVE_TUS_TTL", "tus_ttl", float),
    ("NVE_SESSION_TTL", "session_ttl", float),
    ("NVE_METADATA_TTL", "metadata_ttl", float),
    ("NVE_RATE_LIMIT_WRITES", "rate_limit_writes", int),
    ("NVE_RATE_LIMIT_UPLOADS", "rate_limit_uploads", int),
    ("NVE_RATE_LIMIT_WINDOW", "rate_limit_window", float),
)


def normalize_origin(value: str) -> str | None:
    """``value`` as a browser serialises an origin (RFC 6454), None if it is not an origin.

    Scheme and host lower-cased, the scheme's default port and a trailing slash dropped:
    ``HTTPS://Example.COM:443/`` is ``https://example.com``. Used for the configured
    origins and for a request's ``Origin`` alike, so the two compare as plain strings.
    """
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname  # lower-cased by urlsplit, as is the scheme
    if (not parts.scheme or not host or parts.username is not None or parts.password is not None
            or parts.path not in ("", "/") or parts.query or parts.fragment):
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS.get(parts.scheme):
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def literal_origin(value: str) -> str:
    """How an ``Origin`` that is not a URL origin (``null``) compares: trimmed, lower case."""
    return value.strip().rstrip("/").lower()


def _normalize_origins(origins: tuple[str, ...]) -> tuple[str, ...]:
    """The configured origins, normalised and without duplicates.

    An entry that is not an origin (``null``, a typo) is kept as written and matched as a
    literal ``Origin`` value, as it always was, with a warning: ``null`` is how browsers send
    the origin of a sandboxed or ``file:`` page, which a deployment may mean to let in.
    """
    normalized: dict[str, None] = {}
    for origin in origins:
        canonical = "*" if origin.strip() == "*" else normalize_origin(origin)
        if canonical is None:
            canonical = literal_origin(origin)
            log.warning("NVE_ALLOWED_ORIGINS: %r is not an origin (scheme://host[:port]); it matches only "
                        "an Origin header of exactly that value", origin)
        normalized[canonical] = None
    return tuple(normalized)


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())
