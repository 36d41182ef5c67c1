"""The ``Idempotency-Key`` request header: a client's name for one creation it may retry.

``POST /api/projects`` and ``POST /api/edit/*`` accept it: a request that repeats a key
its owner used before returns what the first one created (with ``Idempotent-Replayed:
true``) instead of creating it again, so a client that lost an answer (a timeout, a 503
after the commit) can retry without fear of doubles. Keys are per owner.
"""

from __future__ import annotations

from core.errors import ValidationError
from server.http.request import Request

MAX_IDEMPOTENCY_KEY = 255
REPLAYED = ("idempotent-replayed", "true")


def idempotency_key(request: Request) -> str | None:
    """The request's key, None without one; a 400 naming the header when it is empty or too long."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationError(f"Header 'Idempotency-Key' must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
                              "Idempotency-Key")
    return key
