"""Dispatch: from a parsed request to its answer, with the request policy around the handler.

:class:`Dispatcher` is what the HTTP server calls for every request. In order:

1. resolve the route (server/http/routing.py: 404, 405 with ``Allow``, 400 for a bad path
   parameter) and give the request its body limit;
2. apply the request policy (server/policy/): a route whose answer belongs to an owner
   refuses a credential that does not hold (401, never a fallback), a mutating request a
   browser was tricked into sending is refused (403), a rate-limited route counts the
   request (429);
3. run the handler;
4. turn every failure into JSON: an error of the one tree (core/errors.py) becomes its
   status, sentence, fields and headers; anything else a 500 carrying the request id (logged
   with its traceback), so a broken handler costs its own request and nothing more;
5. give the answer its route's caching policy (server/http/caching.py), count it
   (server/policy/request_metrics.py) and write the access log line.

It imports no handler: the route table (server/routes.py) is handed to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from core.errors import DomainError
from server.app import App
from server.http.caching import PER_OWNER, CachePolicy, apply_policy
from server.http.request import Request
from server.http.response import AnyResponse, Upgrade, error_response, error_to_response
from server.http.routing import Route, Router
from server.policy.access import check_credentials, check_same_origin
from server.policy.ratelimit import enforce_rate_limit
from server.policy.request_metrics import record_request

access_log = logging.getLogger("nve.access")
log = logging.getLogger("nve.dispatch")


class Dispatcher:
    """Serves ``app`` at the routes given; call it with each request."""

    def __init__(self, app: App, routes: Iterable[Route]) -> None:
        self.app = app
        self.router = Router(routes, default_body_limit=app.settings.json_body_limit)

    async def __call__(self, request: Request) -> AnyResponse:
        started = time.perf_counter()
        request.app = self.app
        pattern = "unmatched"
        cache: CachePolicy | None = None
        try:
            route, request.path_params = self.router.resolve(request.method, request.path)
            pattern, cache = route.pattern, route.cache
            assert route.body_limit is not None  # the router gives every route one
            request.body_limit = route.body_limit
            if cache is PER_OWNER:  # its answer belongs to an owner: a bad key is a 401, never a fallback
                await check_credentials(request)
            check_same_origin(request)
            if route.rate_limited:
                await enforce_rate_limit(request)
            response = await route.handler(request)
        except DomainError as error:
            response = error_to_response(error)
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
