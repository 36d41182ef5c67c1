"""Who the client is: the ``nve_session`` cookie, its address behind trusted proxies, limits.

* ``GET /api/session``: the session's ``{settings, recentProjects}``; starts a session when
  the request carries no valid cookie.
* ``PUT /api/session/settings``: a partial settings object, validated (400 naming the
  field); answers like ``GET``.

Both answer with ``Set-Cookie: nve_session=<uuid>; Max-Age=<ttl>; Path=/; HttpOnly;
SameSite=Lax`` (plus ``Secure`` over TLS), every time: the session slides, so the cookie's
lifetime has to slide with it. A request with an ``Authorization`` that does not hold is a
401 before either runs, as on every route (server/access.py, rule 1).

``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed only from a peer listed in
``settings.trusted_proxies`` (addresses or CIDR networks); anyone else could forge them to
dodge rate limits or to be handed a non-``Secure`` cookie.

For other handlers: :func:`remember_project` (put a project in the session's recent list)
and :func:`enforce_rate_limit` (what dispatch calls before a rate-limited route).
"""

from __future__ import annotations

import functools
import ipaddress
import math
from typing import TYPE_CHECKING

import msgspec

from core.sessions import Session, parse_session_id
from server.http.request import Request
from server.http.response import HTTPError, Response, json_response

if TYPE_CHECKING:
    from server.app import App

COOKIE = "nve_session"
_NO_STORE = ("cache-control", "no-store")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def register_session_routes(app: App) -> None:
    app.router.add("GET", "/api/session", get_session)
    app.router.add("PUT", "/api/session/settings", put_settings, rate_limited=True)


async def get_session(request: Request) -> Response:
    session = await request.app.kv.sessions.open(session_cookie(request))
    return _session_response(request, session)


async def put_settings(request: Request) -> Response:
    patch = await request.json()
    session = await request.app.kv.sessions.update_settings(session_cookie(request), patch)
    return _session_response(request, session)


class _ProjectRef(msgspec.Struct):
    id: int
    name: str


_project_ref = msgspec.json.Decoder(_ProjectRef)


async def remember_project(request: Request, row_json: bytes) -> None:
    """Record that the client opened or saved the project ``row_json`` (a project row as JSON).

    Without a session cookie this costs nothing (the row is not even decoded).
    """
    cookie = session_cookie(request)
    if parse_session_id(cookie) is None:
        return
    project = _project_ref.decode(row_json)
    await request.app.kv.sessions.record_project(cookie, project.id, project.name)


async def enforce_rate_limit(request: Request) -> None:
    """Count the request against its client IP and its session; raise 429 when over a limit.

    Uploads (``/api/upload``, ``/api/uploads/...``) have their own, smaller budget.
    """
    kv = request.app.kv
    limits = kv.limits
    if request.path.startswith("/api/upload"):
        bucket, limit = "upload", limits.uploads
    else:
        bucket, limit = "write", limits.writes
    keys = [f"ip:{client_address(request)}:{bucket}"]
    session_id = parse_session_id(session_cookie(request))
    if session_id is not None:
        keys.append(f"session:{session_id}:{bucket}")
    for key in keys:
        decision = await kv.limiter.check(key, limit, limits.window)
        if not decision.allowed:
            seconds = decision.retry_after_header
            raise HTTPError(429, f"Too many requests; try again in {seconds} s",
                            headers=[("retry-after", seconds)],
                            extra={"retryAfter": int(seconds)})


def session_cookie(request: Request) -> str | None:
    """The ``nve_session`` value from the request's ``Cookie`` headers, if any."""
    for header in request.headers.getall("cookie"):
        for pair in header.split(";"):
            name, _, value = pair.strip().partition("=")
            if name == COOKIE:
                return value.strip().strip('"')
    return None


def client_address(request: Request) -> str:
    """The client's IP: the peer's, or from ``X-Forwarded-For`` when the peer is a trusted proxy.

    The header is read from the right, skipping trusted proxies; the first address that
    is not one is the client (what is left of it could have been written by the client).
    """
    peer = request.client[0] if request.client else ""
    networks = _networks(request.app.settings.trusted_proxies)
    if not _is_trusted(peer, networks):
        return peer
    hops = [hop.strip() for value in request.headers.getall("x-forwarded-for")
            for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            return hop if _is_address(hop) else peer
    return hops[0] if hops else peer


def request_is_tls(request: Request) -> bool:
    """Whether the client reached us over TLS (directly, or per a trusted proxy's header)."""
    if request.scheme == "https":
        return True
    peer = request.client[0] if request.client else ""
    if not _is_trusted(peer, _networks(request.app.settings.trusted_proxies)):
        return False
    proto = request.headers.get("x-forwarded-proto") or ""
    return proto.split(",")[0].strip().lower() == "https"


def session_cookie_header(request: Request, session_id: str, ttl: float) -> tuple[str, str]:
    cookie = (f"{COOKIE}={session_id}; Max-Age={max(1, math.ceil(ttl))}; Path=/; HttpOnly; "
              "SameSite=Lax")
    if request_is_tls(request):
        cookie += "; Secure"
    return "set-cookie", cookie


def _session_response(request: Request, session: Session) -> Response:
    # The id stays out of the body: it is the credential, and the cookie is HttpOnly.
    cookie = session_cookie_header(request, session.id, request.app.kv.sessions.ttl)
    return json_response(session.data, headers=[cookie, _NO_STORE])


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _is_trusted(host: str, networks: tuple[Network, ...]) -> bool:
    if not networks:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
