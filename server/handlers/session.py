"""The browser session's endpoints.

* ``GET /api/session``: the session's ``{settings, recentProjects}``; starts a session when
  the request carries no valid cookie.
* ``PUT /api/session/settings``: a partial settings object, validated (400 naming the
  field); answers like ``GET``.

Both answer with ``Set-Cookie: nve_session=<uuid>; Max-Age=<ttl>; Path=/; HttpOnly;
SameSite=Lax`` (plus ``Secure`` over TLS: server/policy/client.py), every time: the session
slides, so the cookie's lifetime has to slide with it. A request with an ``Authorization``
that does not hold is a 401 before either runs, as on every route (server/policy/access.py,
rule 1).
"""

from __future__ import annotations

from core.sessions import Session
from server.http.request import Request
from server.http.response import Response, json_response
from server.policy.client import session_cookie, session_cookie_header

_NO_STORE = ("cache-control", "no-store")


async def get_session(request: Request) -> Response:
    session = await request.app.kv.sessions.open(session_cookie(request))
    return _session_response(request, session)


async def put_settings(request: Request) -> Response:
    patch = await request.json()
    session = await request.app.kv.sessions.update_settings(session_cookie(request), patch)
    return _session_response(request, session)


def _session_response(request: Request, session: Session) -> Response:
    # The id stays out of the body: it is the credential, and the cookie is HttpOnly.
    cookie = session_cookie_header(request, session.id, request.app.kv.sessions.ttl)
    return json_response(session.data, headers=[cookie, _NO_STORE])
