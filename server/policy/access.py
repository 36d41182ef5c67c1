"""Who a request acts for, and whether a browser could have been tricked into sending it.

Owner of a request (:func:`owner_of`), first rule that applies:

1. ``Authorization: Bearer <key>``: the key's tenant; an unknown or revoked key is a 401
   (a client that presents a credential means it: it never falls back to anything else).
   Dispatch applies this on every route (:func:`check_credentials`), so no route, not
   even one that needs no owner such as the session's, acts on a request whose key fails.
2. A local request: the single user ``local``. Local means: the server runs with
   ``access=open``; or with ``access=auto`` (the default) and the peer is a loopback
   address and no proxy header (``X-Forwarded-For``, ``Forwarded``, ``X-Real-IP``) says
   the request came from further away, and ``Host`` names this machine: ``localhost`` (or a
   name under it, RFC 6761), the machine's own host name, a loopback address (any port), or
   a host in ``NVE_ALLOWED_HOSTS``. The rule follows
   Redis's protected mode: on a machine of one's own, ``nve serve`` just works; from the
   network, nobody is let in as the local user, even with the server bound to every
   interface (the contract's default). The ``Host`` condition stops DNS rebinding: a page
   of a name its attacker re-points at 127.0.0.1 reaches us from loopback, and is
   same-origin by the Origin check too, but it says its own name in ``Host`` (as Jupyter's
   ``local_hostnames`` rule does). A loopback address in ``Host`` cannot be rebound.
3. The ``nve_session`` cookie naming a live session: that browser session (``GET /`` starts
   one for a browser that has none, so the editor works with no sign-in step).
4. Otherwise 401.

Cross-site requests (:func:`check_same_origin`): a mutating request that is not
authenticated by a key rides on ambient authority (the cookie, or being local), which a
page of another site can borrow by making the browser send it. It must come from the
server's own origin or a configured one: a browser says where a request comes from in
``Origin`` (always on cross-origin POST/PUT/DELETE/PATCH) and ``Sec-Fetch-Site``; a request
with neither is not from a browser and is let through.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from core.access import owners
from core.access.apikeys import ApiKeyStore
from core.access.media import MediaOwners
from core.access.tokens import TokenStore
from core.errors import NotFound
from server.http.request import Request
from server.http.response import HTTPError
from server.policy.client import session_cookie, session_cookie_header
from server.ws.handshake import origin_allowed

if TYPE_CHECKING:
    from core.db.pool import Database

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
_PROXY_HEADER_NAMES = frozenset(name.encode("latin-1") for name in PROXY_HEADERS)
LOCAL_PEERS_CACHED = 256
"""How many (peer address, ``Host``) pairs :meth:`Access.local_peer` remembers its answer for."""
_SAME_ORIGIN_SITES = frozenset({"same-origin", "none"})
_CHALLENGE = [("www-authenticate", 'Bearer realm="nve"')]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: the owner id, and how it was established."""

    owner: str
    via: str
    """``key``, ``local`` or ``session``."""


class Access:
    """The stores behind access decisions, one per app (``app.access``)."""

    def __init__(self, db: Database, mode: str, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.mode = mode
        # The machine's own names too: only this machine's resolver decides where they
        # point, so a page cannot rebind them (a client asking http://<hostname>:3001 is local).
        own = (socket.gethostname(), socket.getfqdn())
        self.local_hosts = frozenset(host.lower() for host in ("localhost", *own, *allowed_hosts) if host)
        """``Host`` names (lower case) under which a loopback client may be the local user."""
        self.keys = ApiKeyStore(db)
        self.tokens = TokenStore(db)
        self.media = MediaOwners(db)
        self._local_peers: dict[tuple[str, str | None], bool] = {}

    def local_peer(self, peer: str, host: str | None) -> bool:
        """Whether ``peer`` is a loopback address and ``host`` names this machine (rule 2).

        Remembered: a server has few distinct (peer, ``Host``) pairs, and parsing the address
        on every request cost ~5 % of a GET. The memory is bounded (cleared when full), so
        a client sending many ``Host`` values costs only re-parsing.
        """
        key = (peer, host)
        known = self._local_peers.get(key)
        if known is None:
            if len(self._local_peers) >= LOCAL_PEERS_CACHED:
                self._local_peers.clear()
            known = self._local_peers[key] = (_is_loopback(peer.partition("%")[0])
                                              and _names_this_machine(self.local_hosts, host))
        return known


async def principal(request: Request) -> Principal:
    """The request's :class:`Principal` (see the module docstring); raises 401."""
    known = request.state.get("principal")
    if known is not None:
        return known
    found = await _establish(request)
    request.state["principal"] = found
    return found


async def owner_of(request: Request) -> str:
    """The owner id the request acts for; raises 401 when it has no credential that holds."""
    return (await principal(request)).owner


async def check_credentials(request: Request) -> None:
    """401 when the request presents an ``Authorization`` that does not hold (rule 1); dispatch
    calls it for every route whose answer belongs to an owner (the session routes included),
    so the handlers that act for one find the principal settled already."""
    if request.headers.get("authorization") is not None:
        await principal(request)


async def _establish(request: Request) -> Principal:
    access: Access = request.app.access
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise HTTPError(401, "Header 'Authorization' must be 'Bearer <API key>'", headers=_CHALLENGE)
        owner = await access.keys.owner_of(key.strip())
        if owner is None:
            raise HTTPError(401, "The API key is unknown or was revoked", headers=_CHALLENGE)
        return Principal(owner, "key")
    if is_local(request):
        return Principal(owners.LOCAL, "local")
    session_id = await request.app.kv.sessions.find(session_cookie(request))
    if session_id is not None:
        return Principal(owners.session(session_id), "session")
    raise HTTPError(401, "Authentication required: send 'Authorization: Bearer <API key>', or the "
                    "nve_session cookie (GET /api/session starts a session)", headers=_CHALLENGE)


def is_local(request: Request) -> bool:
    """Whether the request counts as the machine's own single user (rule 2 of the module docstring)."""
    access: Access = request.app.access
    if access.mode != "auto":
        return access.mode == "open"
    if not _PROXY_HEADER_NAMES.isdisjoint([name for name, _ in request.headers.raw]):
        return False
    return access.local_peer(request.client[0] if request.client else "", request.headers.get("host"))


def _names_this_machine(local_hosts: frozenset[str], host: str | None) -> bool:
    """Whether ``Host`` is a name of this machine (module docstring, rule 2): DNS rebinding."""
    if "*" in local_hosts:
        return True
    try:
        hostname = urlsplit(f"//{host or ''}".lower()).hostname
    except ValueError:
        return False
    return hostname is not None and (hostname in local_hosts or hostname.endswith(".localhost")
                                     or _is_loopback(hostname))


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a Unix socket, an unknown peer, a host name: not assumed to be local


async def websocket_owner(request: Request) -> str | None:
    """The owner a WebSocket handshake establishes, like :func:`owner_of`.

    None instead of a 401 when the client brought no credential at all: it may still
    authenticate with a token in its first message (server/ws/hub.py).
    """
    try:
        return await owner_of(request)
    except HTTPError as error:
        if error.status == 401 and request.headers.get("authorization") is None:
            return None
        raise


async def browser_session_cookie(request: Request) -> list[tuple[str, str]]:
    """For ``GET /``: the ``Set-Cookie`` of a new session when a browser needs one to be an owner.

    Empty when the request is local or carries a key or a live session already.
    """
    if request.headers.get("authorization") is not None or is_local(request):
        return []
    sessions = request.app.kv.sessions
    if await sessions.find(session_cookie(request)) is not None:
        return []
    session = await sessions.open(None)
    return [session_cookie_header(request, session.id, sessions.ttl)]


def check_same_origin(request: Request) -> None:
    """403 for a mutating request a page of another origin made a browser send (module docstring)."""
    if request.method in SAFE_METHODS or request.headers.get("authorization") is not None:
        return
    allowed = request.app.settings.allowed_origins
    origin = request.headers.get("origin")
    if origin is not None:
        if origin_allowed(origin, request.headers.get("host"), allowed):
            return
        raise HTTPError(403, f"Cross-origin request refused: Origin {origin} is not allowed to "
                        f"{request.method} here (see NVE_ALLOWED_ORIGINS)")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in _SAME_ORIGIN_SITES:
        raise HTTPError(403, f"Cross-site request refused (Sec-Fetch-Site: {site})")


async def check_media_owner(request: Request, filename: str) -> None:
    """404 unless the media file ``filename`` belongs to the request's owner."""
    owner = await owner_of(request)
    if await request.app.access.media.owner_of(filename) != owner:
        raise NotFound(f"Video {filename} not found")
