"""Who the client is: its address behind trusted proxies, whether it came over TLS, its session.

``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed only from a peer listed in
``settings.trusted_proxies`` (addresses or CIDR networks); anyone else could forge them to
dodge rate limits or to be handed a non-``Secure`` cookie.

The ``nve_session`` cookie carries a browser session's id (core/sessions.py). Every answer
that touches a session sets it again (:func:`session_cookie_header`), as the session
slides; :func:`remember_project` records a project the client opened or saved in its
session's recent list.
"""

from __future__ import annotations

import functools
import ipaddress
import math

import msgspec

from core.sessions import parse_session_id
from server.http.request import Request

COOKIE = "nve_session"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def session_cookie(request: Request) -> str | None:
    """The ``nve_session`` value from the request's ``Cookie`` headers, if any."""
    for header in request.headers.getall("cookie"):
        for pair in header.split(";"):
            name, _, value = pair.strip().partition("=")
            if name == COOKIE:
                return value.strip().strip('"')
    return None


def session_cookie_header(request: Request, session_id: str, ttl: float) -> tuple[str, str]:
    """The ``Set-Cookie`` of session ``session_id`` for ``ttl`` seconds (``Secure`` over TLS)."""
    cookie = (f"{COOKIE}={session_id}; Max-Age={max(1, math.ceil(ttl))}; Path=/; HttpOnly; "
              "SameSite=Lax")
    if request_is_tls(request):
        cookie += "; Secure"
    return "set-cookie", cookie


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
