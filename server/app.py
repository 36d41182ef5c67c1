"""The application: services, routes, and the dispatch that turns every failure into JSON.

:class:`App` is what a handler reaches through ``request.app``. :meth:`App.dispatch` is
the one place where exceptions become responses: an :class:`HTTPError` or a domain error
becomes its status and sentence, anything else a 500 carrying the request id (logged with
its traceback), so a broken handler costs its own request and nothing more. It is also
where every answer gets its route's caching policy (server/caching.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from core.config import Settings
from core.db.pool import Database
from core.errors import DomainError
from core.kv.services import KvServices, RateLimits
from core.projects import ProjectStore
from server.access import Access, check_credentials, check_same_origin
from server.caching import PER_OWNER, CachePolicy, apply_policy
from server.http.request import Request
from server.http.response import AnyResponse, HTTPError, Upgrade, error_response
from server.handlers.metrics import record_request
from server.handlers.session import enforce_rate_limit
from server.routing import Router

if TYPE_CHECKING:
    from core.jobs.queue import JobQueue
    from core.media.pool import MediaPool
    from server.tus import TusStore
    from server.ws.hub import Hub

access_log = logging.getLogger("nve.access")
log = logging.getLogger("nve.app")

Hook = Callable[[], Awaitable[None]]


class App:
    # Services that register() installs (server/handlers/__init__.py):
    hub: Hub
    jobs: JobQueue
    media_pool: MediaPool
    tus: TusStore

    def __init__(self, settings: Settings, db: Database) -> None:
        from server.handlers import register
        from server.handlers.metadata import pooled_probe

        self.settings = settings
        self.db = db
        self.projects = ProjectStore(db)
        self.access = Access(db, settings.access, settings.allowed_hosts)
        self.router = Router(default_body_limit=settings.json_body_limit)
        self.on_startup: list[Hook] = []
        self.on_shutdown: list[Hook] = []
        self.on_close_connections: list[Hook] = []
        """Run in reverse order of registration, so later services stop before those they use."""
        self.readiness: dict[str, Callable[[], Awaitable[dict[str, object]]]] = {}
        self.kv = KvServices(
            settings.redis_url, db, settings.media_path, pooled_probe(self),
            session_ttl=settings.session_ttl, metadata_ttl=settings.metadata_ttl,
            limits=RateLimits(settings.rate_limit_writes, settings.rate_limit_uploads,
                              settings.rate_limit_window))
        self.on_startup.append(self.kv.start)
        self.on_shutdown.append(self.kv.close)
        self.readiness["redis"] = self.kv.readiness
        register(self)

    async def startup(self) -> None:
        for hook in self.on_startup:
            await hook()

    async def shutdown_connections(self) -> None:
        """Close long-lived connections (WebSockets, with 1001) before HTTP drains."""
        for hook in self.on_close_connections:
            await hook()

    async def shutdown(self) -> None:
        for hook in reversed(self.on_shutdown):
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook %r failed", hook)

    async def dispatch(self, request: Request) -> AnyResponse:
        started = time.perf_counter()
        request.app = self
        pattern = "unmatched"
        cache: CachePolicy | None = None
        try:
            route, request.path_params = self.router.resolve(request.method, request.path)
            pattern, cache = route.pattern, route.cache
            request.body_limit = route.body_limit
            if cache is PER_OWNER:  # its answer belongs to an owner: a bad key is a 401, never a fallback
                await check_credentials(request)
            check_same_origin(request)
            if route.rate_limited:
                await enforce_rate_limit(request)
            response = await route.handler(request)
        except HTTPError as error:
            response = error.to_response()
        except DomainError as error:
            response = error_response(error.status, str(error), **error.extra)
        except ConnectionError:
            response = error_response(400, "The request body ended early")
        except Exception:
            log.exception("request %s %s failed (id %s)", request.method, request.path, request.request_id)
            response = error_response(500, "Internal server error", requestId=request.request_id)
        if not isinstance(response, Upgrade):
            apply_policy(cache, response)
        status, elapsed = getattr(response, "status", 101), time.perf_counter() - started
        record_request(request.method, pattern, status, elapsed)
        access_log.info("%s %s %d %.1fms id=%s", request.method, request.path, status,
                        elapsed * 1000, request.request_id)
        return response

