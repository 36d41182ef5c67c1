"""Who may keep a copy of an answer: the ``Cache-Control`` and ``Vary`` every response gets.

Almost every answer belongs to one owner (SECURITY.md, "Who may do what"), and the owner
is decided by request headers (``Cookie``, ``Authorization``), not by the URL: a shared
cache that kept such an answer under its URL alone would hand one owner's data to another.
So the policy is a property of the route (:attr:`server.http.routing.Route.cache`), applied
once, in :meth:`server.app.App.dispatch`, to whatever the handler returned:

* :data:`PER_OWNER`, the default: ``private, no-cache`` and ``Vary: Cookie, Authorization``.
  Only the owner's browser may keep it, and must revalidate it before each use (with the
  ``ETag`` / ``Last-Modified`` that media files and projects carry, or by asking again).
* :data:`SHARED`: the same answer for everyone (the UI's files, the OpenAPI document):
  ``no-cache``, so any cache may keep it but revalidates, and nobody runs a stale UI.
* :data:`LIVE`: the state of the moment (health, readiness, metrics): ``no-store``.
* Error answers (4xx, 5xx) and requests that matched no route: ``no-store``; an error
  says something about one request and one owner, and must not outlive it.

A ``Cache-Control`` the handler set itself stands (credentials and session data say
``no-store``). No answer depends on ``Origin``: a refused cross-site request is an error,
already ``no-store``, so no ``Vary: Origin`` is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.http.response import Response, StreamingResponse

ERROR_CACHE_CONTROL = "no-store"


@dataclass(frozen=True, slots=True)
class CachePolicy:
    cache_control: str
    vary: str | None = None
    """The request headers the answer depends on."""


PER_OWNER = CachePolicy("private, no-cache", "Cookie, Authorization")
SHARED = CachePolicy("no-cache")
LIVE = CachePolicy("no-store")


def apply_policy(policy: CachePolicy | None, response: Response | StreamingResponse) -> None:
    """Add ``policy``'s headers to ``response`` (None: no route matched)."""
    names = {name.lower() for name, _ in response.headers}
    if "cache-control" not in names:
        value = policy.cache_control if policy is not None and response.status < 400 else ERROR_CACHE_CONTROL
        response.headers.append(("cache-control", value))
    if policy is not None and policy.vary and "vary" not in names:
        response.headers.append(("vary", policy.vary))
