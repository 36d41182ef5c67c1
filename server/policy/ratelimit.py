"""Rate limits: what dispatch checks before a route marked ``rate_limited`` runs.

Each such request counts against its client IP (server/policy/client.py, behind trusted
proxies) and, when it carries one, its session; uploads (``/api/upload``,
``/api/uploads/...``) have their own, smaller budget. Each node decides in-process on the
counts all nodes share through Redis (core/kv/ratelimit.py, which bounds what a cluster may
let in over a limit), so a request costs Redis nothing.
"""

from __future__ import annotations

from core.sessions import parse_session_id
from server.http.request import Request
from server.http.response import HTTPError
from server.policy.client import client_address, session_cookie


async def enforce_rate_limit(request: Request) -> None:
    """Count the request against its client IP and its session; raise 429 when over a limit."""
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
