"""Method + path routing with typed path parameters.

Patterns are written ``/api/projects/{id:int}``: a ``{name}`` matches one path segment
as a string, ``{name:int}`` one segment that must be a decimal integer. A path that fits a
pattern but not its converter (``/api/projects/abc``) is a 400 naming the parameter,
not a 404, because the client reached the right resource with a malformed id. A path
that fits no pattern is a 404; a path that fits only under other methods is a 405 with
``Allow``. HEAD is served by the GET route. A route also says who may cache its answers
(``cache``, per owner unless told otherwise: server/http/caching.py), how large a body it
takes, whether dispatch rate-limits it, and carries its OpenAPI operation (``doc``), so
the application's route table (server/routes.py) is the one place all of that is written.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from server.http.caching import PER_OWNER, CachePolicy
from server.http.request import Request
from server.http.response import AnyResponse, HTTPError

Handler = Callable[[Request], Awaitable[AnyResponse]]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(int|str))?\}")
_INT = re.compile(r"-?\d{1,18}")


@dataclass(slots=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    body_limit: int | None = None
    """Largest request body in bytes; None: the router's default (the JSON limit)."""
    rate_limited: bool = False
    """Whether dispatch counts it against the client's rate limits (server/policy/ratelimit.py)."""
    cache: CachePolicy = PER_OWNER
    """Who may keep a copy of its answers (server/http/caching.py)."""
    doc: Mapping[str, Any] | None = None
    """Its OpenAPI operation object; None keeps it out of the document (server/apidoc.py)."""
    converters: dict[str, str] = field(default_factory=dict)
    regex: re.Pattern[str] | None = None


class Router:
    """Resolves requests against routes; give it the table at construction, :meth:`add` more."""

    def __init__(self, routes: Iterable[Route] = (), default_body_limit: int = 1 << 20) -> None:
        self._default_body_limit = default_body_limit
        self._static: dict[str, dict[str, Route]] = {}
        self._dynamic: list[Route] = []
        self.routes: list[Route] = []
        for route in routes:
            self.mount(route)

    def add(self, method: str, pattern: str, handler: Handler, *, body_limit: int | None = None,
            rate_limited: bool = False, cache: CachePolicy = PER_OWNER) -> Route:
        """Mount one more route (tests mount probes of their own this way)."""
        return self.mount(Route(method, pattern, handler, body_limit, rate_limited, cache))

    def mount(self, route: Route) -> Route:
        """Mount a copy of ``route`` (a table may be mounted by several routers) and return it."""
        route = replace(route, body_limit=self._default_body_limit if route.body_limit is None else route.body_limit)
        pattern, method = route.pattern, route.method
        converters: dict[str, str] = {}

        def to_group(match: re.Match[str]) -> str:
            converters[match.group(1)] = match.group(2) or "str"
            return f"(?P<{match.group(1)}>[^/]+)"

        if _PARAM.search(pattern):
            route.regex = re.compile("^" + _PARAM.sub(to_group, re.escape(pattern).replace(r"\{", "{")
                                                      .replace(r"\}", "}")) + "$")
            route.converters = converters
            self._dynamic.append(route)
        else:
            by_method = self._static.setdefault(pattern, {})
            if method in by_method:
                raise ValueError(f"route {method} {pattern} is defined twice")
            by_method[method] = route
        self.routes.append(route)
        return route

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, Any]]:
        """The route and converted parameters; raises HTTPError 404 / 405 / 400."""
        lookup = "GET" if method == "HEAD" else method
        allowed: set[str] = set()
        by_method = self._static.get(path)
        if by_method is not None:
            route = by_method.get(lookup)
            if route is not None:
                return route, {}
            allowed.update(by_method)
        for route in self._dynamic:
            assert route.regex is not None
            match = route.regex.match(path)
            if match is None:
                continue
            if route.method != lookup:
                allowed.add(route.method)
                continue
            return route, _convert(route, match.groupdict())
        if allowed:
            if "GET" in allowed:
                allowed.add("HEAD")
            allow = ", ".join(sorted(allowed))
            raise HTTPError(405, f"Method {method} is not allowed on {path}; use {allow}",
                            headers=[("allow", allow)])
        raise HTTPError(404, f"No such endpoint: {path}")


def _convert(route: Route, raw: dict[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in raw.items():
        if route.converters.get(name) == "int":
            if not _INT.fullmatch(value):
                raise HTTPError(400, f"Path parameter '{name}' must be an integer (got {value!r})",
                                extra={"field": name})
            params[name] = int(value)
        else:
            params[name] = value
    return params
